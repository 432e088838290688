import ArgumentParser
import Data
import Ensemble
import Experiment
import Files
import Foundation
import Report
import Pipeline
import NN
import Tensor
import Training
import RunLayout

struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Run a finished run's submitted ensemble (or its distilled student) on new data.",
    discussion: """
      DATA takes the place of the experiment's test data, read with the experiment's layout (an IDX \
      folder with t10k files, a .npy of images, a CSV, …). The ensemble: every member's fold models \
      (or its model refit on all data, where the submission used it), then the ensemble's combiner. \
      Each model normalises with the statistics its checkpoint records and applies its variant's \
      test-time augmentation, as in training, unless --tta-flips or --tta-shift say otherwise. \
      Writes id,label (and, with --probabilities, each class's probability).
      """)

  @Argument(help: "The run directory (it holds experiment.yaml, checkpoints/ and ensemble/).") var runDirectory: String
  @Argument(help: "The data to predict, in the experiment's test layout.") var data: String
  @Option(help: "Where the predictions go.") var output: String = "predictions.csv"
  @Option(help: "CPU threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
  @Flag(help: "Also write each class's probability.") var probabilities = false
  @Flag(help: "Run the distilled student (checkpoints/student/all.safetensors) instead of the ensemble.") var student = false
  @Option(help: "Test-time augmentation for every model: also average over left-right flips (true/false; default: each variant's).")
  var ttaFlips: Bool?
  @Option(help: "Test-time augmentation for every model: also average over shifts by this many pixels (default: each variant's).")
  var ttaShift: Int?

  func validate() throws {
    if let ttaShift, ttaShift < 0 { throw ValidationError("--tta-shift must be ≥ 0") }
  }

  func run() throws {
    let run = RunDirectory(runDirectory)
    var experiment = try Experiment.read(run.experiment)
    experiment.runDirectory = runDirectory
    // A search's members: the configurations it chose (search.json).
    experiment = try experiment.applyingSearchResults()
    experiment.runDirectory = runDirectory
    experiment.data.removeAll { $0.key == "test" }
    experiment.data.append((key: "test", value: SettingValue(kind: .text(data), line: nil)))
    let loaded = try ExperimentData.load(experiment)
    guard let newData = loaded.test else { throw DataError(file: data, "no data read (is it in the experiment's test layout?)") }
    let training = loaded.training
    let predictor = CheckpointPredictor(
      runDirectory: runDirectory, experiment: experiment, training: training, data: newData, threads: threads,
      testTimeAugmentation: { variant in
        TestTimeAugmentation(flips: ttaFlips ?? variant.flips, shift: ttaShift ?? variant.shift)
      })
    let predictions: Predictions
    let method: String
    if student {
      guard let plan = experiment.distill else { throw DataError(file: run.experiment, "has no distill: section: there is no student") }
      predictions = try predictor.predict(variant: plan.student, checkpoints: [run.refitCheckpoint(variant: plan.student.name)])
      method = "the distilled student"
    } else {
      let submitted = try SubmittedEnsemble.read(runDirectory: runDirectory)
      var memberPredictions: [Predictions] = []
      for name in submitted.members {
        guard let variant = experiment.foldVariants.first(where: { $0.name == name }) else {
          throw DataError(file: run.submittedEnsemble, "names member \(name), which the experiment does not have")
        }
        let refit = submitted.refit?.contains(name) == true
        let checkpoints = refit
          ? [run.refitCheckpoint(variant: name)]
          : (0..<loaded.folds.count).map { run.memberCheckpoint(variant: name, fold: $0) }
        memberPredictions.append(try predictor.predict(variant: variant, checkpoints: checkpoints))
        FileHandle.standardError.write(Data("predict: \(name): \(refit ? "refit on all data" : "\(checkpoints.count) fold models")\n".utf8))
      }
      predictions = submitted.combiner.apply(memberPredictions)
      method = submitted.method
    }
    let classNames = training.classNames ?? (0..<training.classes).map(String.init)
    var text = "id,label" + (probabilities ? classNames.map { ",\($0)" }.joined() : "") + "\n"
    for row in 0..<predictions.rows {
      text += "\(newData.ids?[row] ?? String(row)),\(classNames[predictions.predictedClass(row: row)])"
      if probabilities {
        for c in 0..<predictions.classes { text += String(format: ",%.6f", exp(predictions.logProbabilities[row * predictions.classes + c])) }
      }
      text += "\n"
    }
    try FileBytes.writeAtomically(Array(text.utf8), to: output)
    if newData.isLabelled {
      let metrics = predictions.metrics(labels: newData.labels)
      print(String(format: "%@ on %d labelled examples: accuracy %.4f, balanced accuracy %.4f, lowest recall %.3f",
        method, newData.count, metrics.accuracy, metrics.balancedAccuracy, metrics.lowestRecall))
    }
    print("wrote \(output) (\(predictions.rows) rows, \(method))")
  }
}

/// Runs stored models on new data (a `Predictor` each): each checkpoint with the
/// normalisation it records (its training data's), the variant's configuration and a
/// test-time augmentation; the checkpoints' probabilities averaged.
struct CheckpointPredictor {
  let runDirectory: String
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
