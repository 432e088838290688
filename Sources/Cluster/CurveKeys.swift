import CZeroMQ
import Files
import Foundation

/// A CURVE key pair (Curve25519), each key as 40 characters of Z85 text, the form libzmq
/// takes. Files: NAME.key holds the secret key (mode 0600), NAME.pub the public key; both
/// are one line of text, so they can be copied, mounted as secrets and compared by eye.
public struct CurveKeys: Equatable {
  public let publicKey: String
  public let secretKey: String

  /// A fresh key pair from libsodium's random source (through libzmq).
  public static func generate() throws -> CurveKeys {
    var publicKey = [CChar](repeating: 0, count: 41)
    var secretKey = [CChar](repeating: 0, count: 41)
    try check(zmq_curve_keypair(&publicKey, &secretKey), "zmq_curve_keypair", hint: "libzmq was built without CURVE (libsodium)")
    return CurveKeys(publicKey: String(cString: publicKey), secretKey: String(cString: secretKey))
  }

  /// The pair of a secret key (the public key is derived from it).
  public init(secretKey: String) throws {
    guard CurveKeys.isKey(secretKey) else { throw KeyError("not a CURVE secret key (40 characters of Z85 text)") }
    var publicKey = [CChar](repeating: 0, count: 41)
    try check(zmq_curve_public(&publicKey, secretKey), "zmq_curve_public")
    self.publicKey = String(cString: publicKey)
    self.secretKey = secretKey
  }

  private init(publicKey: String, secretKey: String) {
    self.publicKey = publicKey
    self.secretKey = secretKey
  }

  /// Reads a secret key file (NAME.key).
  public static func read(secretKeyFile path: String) throws -> CurveKeys {
    // Any 40 Z85 characters make a valid secret key, a public key among them: the file
    // name is the only tell.
    if path.hasSuffix(".pub") { throw KeyError("\(path): this is a public key file; pass the secret .key file") }
    let text = try readKeyText(path)
    do { return try CurveKeys(secretKey: text) } catch let error as KeyError {
      throw KeyError("\(path): \(error.message)")
    }
  }

  /// A warning when the secret key file can be read by other users (ssh refuses such a
  /// key; Quorum says so, since a container's secret mount is commonly 0444 inside a
  /// private mount), nil when it is owner-only.
  public static func exposure(ofSecretKeyFile path: String) -> String? {
    var status = stat()
    guard stat(path, &status) == 0, status.st_mode & 0o077 != 0 else { return nil }
    return "\(path) has mode \(String(status.st_mode & 0o777, radix: 8)): other users can read or change this secret key (and impersonate this peer); chmod 600 \(path)"
  }

  /// Reads a public key file (NAME.pub): one key, '#' comments allowed.
  public static func read(publicKeyFile path: String) throws -> String {
    let line = try readKeyText(path)
    // A trailing "# comment", as the one-file allow-list takes.
    let text = String(line.prefix(40))
    let rest = line.dropFirst(40).trimmingCharacters(in: .whitespaces)
    guard isKey(text), rest.isEmpty || rest.hasPrefix("#") else { throw KeyError("\(path): not a CURVE public key (40 characters of Z85 text)") }
    return text
  }

  /// Writes DIRECTORY/NAME.key (owner-only) and DIRECTORY/NAME.pub; refuses to overwrite
  /// an existing key, which would lock out every peer that trusts it.
  public func write(name: String, directory: String) throws -> (secret: String, public: String) {
    try Folders.create(directory)
    let secretPath = "\(directory)/\(name).key"
    let publicPath = "\(directory)/\(name).pub"
    for path in [secretPath, publicPath] where FileManager.default.fileExists(atPath: path) {
      throw KeyError("\(path) exists: remove it first to replace the key (peers that trust it must get the new public key)")
    }
    // Created owner-only (never readable by others, not even for a moment), and never
    // over an existing file (O_EXCL).
    let descriptor = open(secretPath, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard descriptor >= 0 else { throw KeyError("\(secretPath): cannot be created: \(String(cString: strerror(errno)))") }
    let text = Array("# Quorum CURVE secret key: keep it private\n\(secretKey)\n".utf8)
    let written = text.withUnsafeBytes { Foundation.write(descriptor, $0.baseAddress, $0.count) }
    let synced = fsync(descriptor)
    close(descriptor)
    guard written == text.count, synced == 0 else { throw KeyError("\(secretPath): could not be written") }
    try FileBytes.writeAtomically(Array("\(publicKey)\n".utf8), to: publicPath)
    return (secretPath, publicPath)
  }

  /// Whether text is a Z85-encoded 32-byte key.
  public static func isKey(_ text: String) -> Bool {
    guard text.utf8.count == 40 else { return false }
    var bytes = [UInt8](repeating: 0, count: 32)
    return zmq_z85_decode(&bytes, text) != nil
  }

  /// A key file's key: the first line that is not blank or a '#' comment.
  static func readKeyText(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else { throw KeyError("\(path): no such file (or not readable)") }
    let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
      .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
    guard let first = lines.first else { throw KeyError("\(path): holds no key") }
    return first
  }
}

/// The worker public keys a coordinator admits: every NAME.pub in a folder, or the keys of
/// one file (one per line, '#' comments). Read again at every handshake, so adding or
/// removing a key file takes effect without a restart (key rotation).
public struct AllowList {
  public let path: String

  public init(path: String) throws {
    self.path = path
    _ = try keys()  // fail at start on a missing or malformed list, not at the first worker
  }

  /// Public key → the name it was given (its file name, or "PATH line N"); every file
  /// must be a key (checked at start: fix the list before serving).
  public func keys() throws -> [String: String] {
    let (keys, skipped) = try read()
    if let first = skipped.first { throw KeyError(first) }
    return keys
  }

  /// The keys, and the folder's files that are not keys, skipped: one bad or half-copied
  /// .pub file while serving must not lock out every worker whose key is listed. (A bad
  /// file admits nobody, so skipping it fails closed.)
  public func read() throws -> (keys: [String: String], skipped: [String]) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw KeyError("\(path): no such allow-list (a folder of worker .pub files, or a file of keys)")
    }
    var keys: [String: String] = [:]
    var skipped: [String] = []
    if isDirectory.boolValue {
      let files = try Folders.list(path).filter { $0.hasSuffix(".pub") }
      for file in files {
        do { keys[try CurveKeys.read(publicKeyFile: "\(path)/\(file)")] = String(file.dropLast(4)) } catch { skipped.append("\(error)") }
      }
    } else {
      guard let data = FileManager.default.contents(atPath: path) else { throw KeyError("\(path): not readable") }
      for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.isEmpty || text.hasPrefix("#") { continue }
        let key = String(text.prefix(40))
        guard CurveKeys.isKey(key) else { throw KeyError("\(path) line \(index + 1): not a CURVE public key") }
        let comment = text.dropFirst(40).trimmingCharacters(in: .whitespaces)
        keys[key] = comment.isEmpty ? "\(path) line \(index + 1)" : comment
      }
    }
    return (keys, skipped)
  }
}

public struct KeyError: Error, CustomStringConvertible {
  public let message: String
  init(_ message: String) { self.message = message }
  public var description: String { message }
}
