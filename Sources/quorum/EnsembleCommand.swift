import ArgumentParser
import Data
import Files
import Foundation
import Pipeline
import RunLayout

struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Combine a run's members and rebuild its outputs: scores.csv, ensemble/, submission.csv, report.html.",
    discussion: """
      Methods: the best member, soft and hard votes, Caruana selection, NLL-optimal weights, stacking \
      (logistic regression) and the soft vote with temperature scaling; fitted methods are scored by \
      cross-validation over the run's folds. `quorum run` does this at its end; run it again after \
      changing the experiment's ensemble: section, or on a run directory copied from elsewhere.
      """,
    aliases: ["ensemble"])

  @Argument(help: "A run directory (it holds experiment.yaml), or an experiment file.") var path: String

  func run() throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw DataError(file: path, "no such run directory or experiment file")
    }
    let setup = isDirectory.boolValue
      ? try ExperimentSetup(file: RunDirectory(path).experiment, runDirectory: path) : try ExperimentSetup(file: path)
    print(try RunReport.combine(setup: setup).text)
    print("wrote \(setup.experiment.runDirectory)/report.html, scores.csv, submission.csv, ensemble/")
  }
}
