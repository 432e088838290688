import ArgumentParser
import Cluster

struct Keys: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "CURVE keys for encrypted, authenticated coordinator–worker traffic.",
    subcommands: [Generate.self, Show.self])

  struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Make a key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub (public).",
      discussion: """
        One pair for the coordinator (its .pub goes to every worker, as --server-key) and one per \
        worker (its .pub goes into the coordinator's --allow folder). An existing key is never \
        overwritten.
        """)

    @Argument(help: "The key's name, e.g. coordinator or gpu-node-3.") var name: String
    @Option(help: "The folder to write into.") var dir: String = "keys"

    func validate() throws {
      guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }), !name.hasPrefix(".") else {
        throw ValidationError("the name \"\(name)\" may hold letters, digits, - _ . only (it becomes a file name)")
      }
    }

    func run() throws {
      let keys = try CurveKeys.generate()
      let paths = try keys.write(name: name, directory: dir)
      print("secret key: \(paths.secret) (keep it on this machine)")
      print("public key: \(paths.public)  \(keys.publicKey)")
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the public key of a secret key file.")

    @Argument(help: "A .key file.") var file: String

    func run() throws { print(try CurveKeys.read(secretKeyFile: file).publicKey) }
  }
}
