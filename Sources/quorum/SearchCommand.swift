import ArgumentParser
import Data
import Files
import Foundation
import RunLayout

struct SearchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "search", abstract: "A hyper-parameter search's trials (the experiment's search: section).",
    subcommands: [Show.self])

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print a run's trials, best first: each one's sampled settings, its score and the member it became.")

    @Argument(help: "The run directory.") var runDirectory: String

    func run() throws {
      let path = RunDirectory(runDirectory).searchTable
      guard FileManager.default.fileExists(atPath: path) else {
        throw ValidationError("\(path) does not exist: the run has no search, or no batch of trials has finished yet")
      }
      let rows = try CSV.parse(String(decoding: try FileBytes.read(path), as: UTF8.self), path: path)
      guard let header = rows.first, header.count >= 4 else { throw DataError(file: path, "has no header row") }
      let scoreColumn = header.count - 3
      let trials = rows.dropFirst().filter { $0.count == header.count }
      let ranked = trials.sorted { (Double($0[scoreColumn]) ?? -.infinity) > (Double($1[scoreColumn]) ?? -.infinity) }
      print("| " + header.joined(separator: " | ") + " |")
      print("|" + String(repeating: " --- |", count: header.count))
      for row in ranked { print("| " + row.joined(separator: " | ") + " |") }
      let scored = trials.filter { Double($0[scoreColumn]) != nil }.count
      print("\n\(trials.count) trials, \(scored) scored by \(header[scoreColumn]); best first.")
    }
  }
}
