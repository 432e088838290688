import Data
import Files
import Foundation

/// The data an experiment names, loaded the same way by the coordinator (for the folds and
/// the final scores) and by every worker.
public struct ExperimentData {
  public var training: ImageDataset
  public var test: ImageDataset?
  public var folds: FoldAssignment
  /// What loading changed that the user may not want (colour files read as grey), for
  /// the coordinator's log.
  public var warnings: [String] = []

  public init(training: ImageDataset, test: ImageDataset?, folds: FoldAssignment, warnings: [String] = []) {
    self.training = training
    self.test = test
    self.folds = folds
    self.warnings = warnings
  }

  public static func load(_ experiment: Experiment) throws -> ExperimentData { try load(DataSource(experiment)) }

  /// The data set of a data source, folded: a worker that reads the paths loads the same
  /// one as the coordinator, from the source its task specification carries.
  public static func load(_ source: DataSource) throws -> ExperimentData {
    let examples = try source.examples()
    let training = examples.training
    let folds: FoldAssignment
    if let file = source.foldsFile {
      folds = try FoldAssignment.read(file, examples: training.count)
    } else {
      let k = source.foldCount ?? 5
      do {
        try FoldAssignment.checkStratifiable(classCounts: training.classCounts, folds: k, source: "folds.k", classNames: training.classNames)
      } catch let error as DataError { throw ExperimentError(file: source.file, line: nil, "\(error)") }
      folds = FoldAssignment.stratified(labels: training.labels, classes: training.classes, folds: k, seed: source.foldSeed)
    }
    return ExperimentData(training: training, test: examples.test, folds: folds, warnings: examples.warnings)
  }
}
