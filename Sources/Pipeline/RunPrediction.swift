import Data
import Ensemble
import Experiment
import Files
import Foundation
import Report
import RunLayout
import Tensor
import Training

/// New data through a finished run: its submitted ensemble (every member's fold models, or
/// its model refit on all data where the submission used it, then the ensemble's combiner)
/// or its distilled student. The data takes the place of the experiment's test set, read
/// with the experiment's layout.
public struct RunPrediction {
  public let run: RunDirectory
  public let experiment: Experiment
  /// The experiment's training set (its classes, their names, the models' input).
  public let training: ImageDataset
  /// The data predicted.
  public let data: ImageDataset
  let foldCount: Int

  /// What was predicted, and by what.
  public struct Outcome {
    public var predictions: Predictions
    /// "the distilled student", or the submitted ensemble's method.
    public var method: String
  }

  public init(runDirectory: String, data path: String) throws {
    run = RunDirectory(runDirectory)
    var experiment = try Experiment.read(run.experiment)
    experiment.runDirectory = runDirectory
    // A search's members: the configurations it chose (search.json).
    experiment = try experiment.applyingSearchResults()
    experiment.runDirectory = runDirectory
    experiment.data.removeAll { $0.key == "test" }
    experiment.data.append((key: "test", value: SettingValue(kind: .text(path), line: nil)))
    let loaded = try ExperimentData.load(experiment)
    guard let data = loaded.test else { throw DataError(file: path, "no data read (is it in the experiment's test layout?)") }
    self.experiment = experiment
    self.training = loaded.training
    self.data = data
    foldCount = loaded.folds.count
  }

  /// The distilled student's predictions.
  public func student(threads: Int, testTimeAugmentation: @escaping (TestTimeAugmentation) -> TestTimeAugmentation) throws -> Outcome {
    guard let plan = experiment.distill else { throw DataError(file: run.experiment, "has no distill: section: there is no student") }
    let predictor = CheckpointPredictor(
      experiment: experiment, training: training, data: data, threads: threads, testTimeAugmentation: testTimeAugmentation)
    return Outcome(
      predictions: try predictor.predict(variant: plan.student, checkpoints: [run.refitCheckpoint(variant: plan.student.name)]),
      method: "the distilled student")
  }

  /// The submitted ensemble's predictions; `log` hears which models each member ran.
  public func ensemble(
    threads: Int, testTimeAugmentation: @escaping (TestTimeAugmentation) -> TestTimeAugmentation, log: (String) -> Void = { _ in }
  ) throws -> Outcome {
    let predictor = CheckpointPredictor(
      experiment: experiment, training: training, data: data, threads: threads, testTimeAugmentation: testTimeAugmentation)
    let submitted = try SubmittedEnsemble.read(runDirectory: run.root)
    var memberPredictions: [Predictions] = []
    for name in submitted.members {
      guard let variant = experiment.foldVariants.first(where: { $0.name == name }) else {
        throw DataError(file: run.submittedEnsemble, "names member \(name), which the experiment does not have")
      }
      let refit = submitted.refit?.contains(name) == true
      let checkpoints = refit
        ? [run.refitCheckpoint(variant: name)] : (0..<foldCount).map { run.memberCheckpoint(variant: name, fold: $0) }
      memberPredictions.append(try predictor.predict(variant: variant, checkpoints: checkpoints))
      log("\(name): \(refit ? "refit on all data" : "\(checkpoints.count) fold models")")
    }
    return Outcome(predictions: submitted.combiner.apply(memberPredictions), method: submitted.method)
  }
}

/// Runs stored models on new data (a `Predictor` each): each checkpoint with the
/// normalisation it records (its training data's), the variant's configuration and a
/// test-time augmentation; the checkpoints' probabilities averaged.
struct CheckpointPredictor {
  let experiment: Experiment
  let training: ImageDataset
  let data: ImageDataset
  let threads: Int
  /// The augmentation for a variant's own.
  let testTimeAugmentation: (TestTimeAugmentation) -> TestTimeAugmentation

  func predict(variant: Experiment.Variant, checkpoints: [String]) throws -> Predictions {
    let configuration = try TaskSpecification.configuration(of: variant, for: training, file: experiment.file)
    var models: [Predictions] = []
    for checkpoint in checkpoints {
      guard FileManager.default.fileExists(atPath: checkpoint) else {
        throw DataError(file: checkpoint, "no such checkpoint (was \(variant.name)'s task stored?)")
      }
      // The checkpoint records the normalisation its model was trained with (its fold's
      // training images, and a Noisy Student's pseudo-labelled ones).
      let predictor = try Predictor(
        checkpoint: checkpoint, configuration: configuration.model,
        expected: "the experiment's \(variant.name) (a checkpoint of another run or variant? restore this run's)",
        batchSize: configuration.batchSize, backend: CPUBackend(threads: threads), threads: threads)
      let augmentation = testTimeAugmentation(configuration.testTimeAugmentation)
      models.append(Predictions(logits: try predictor.predict(data, testTimeAugmentation: augmentation).logits, classes: training.classes))
    }
    return Predictions.mixture(models, weights: [Double](repeating: 1, count: models.count))
  }
}
