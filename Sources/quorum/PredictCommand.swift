import ArgumentParser
import Data
import Ensemble
import Experiment
import Foundation
import NN
import Tensor
import Training

struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Run a finished run's submitted ensemble on new data: every member's fold models, then the ensemble's combiner.",
    discussion: """
      DATA takes the place of the experiment's test data, read with the experiment's layout (an IDX \
      folder with t10k files, a .npy of images, a CSV, …). Each fold model normalises with its own \
      training fold's statistics and applies the variant's test-time augmentation, as in training. \
      Writes id,label (and, with --probabilities, each class's probability).
      """)

  @Argument(help: "The run directory (it holds experiment.yaml, checkpoints/ and ensemble/).") var runDirectory: String
  @Argument(help: "The data to predict, in the experiment's test layout.") var data: String
  @Option(help: "Where the predictions go.") var output: String = "predictions.csv"
  @Option(help: "CPU threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
  @Flag(help: "Also write each class's probability.") var probabilities = false

  func run() throws {
    var experiment = try Experiment.read(runDirectory + "/experiment.yaml")
    experiment.runDirectory = runDirectory
    experiment.data.removeAll { $0.key == "test" }
    experiment.data.append((key: "test", value: SettingValue(kind: .text(data), line: nil)))
    let loaded = try ExperimentData.load(experiment)
    guard let newData = loaded.test else { throw ValidationError("\(data): no data read (is it in the experiment's test layout?)") }
    let submitted = try SubmittedEnsemble.read(runDirectory: runDirectory)
    let training = loaded.training
    var memberPredictions: [Predictions] = []
    for name in submitted.members {
      guard let variant = experiment.foldVariants.first(where: { $0.name == name }) else {
        throw ValidationError("\(runDirectory)/ensemble/submitted.json names member \(name), which the experiment does not have")
      }
      let configuration = try TaskRunner.configuration(of: variant, for: training, file: experiment.file)
      var folds: [Predictions] = []
      for fold in 0..<loaded.folds.count {
        let checkpoint = "\(runDirectory)/checkpoints/\(name)/fold\(fold).safetensors"
        // The checkpoint records the normalisation its model was trained with (its fold's
        // training images, and a Noisy Student's pseudo-labelled ones).
        let recorded = try ModelCheckpoint.description(of: checkpoint)
        guard recorded.configuration == configuration.model else {
          throw ValidationError("\(checkpoint) holds another model than the experiment's \(name) (\(recorded.configuration) against \(configuration.model))")
        }
        let trainer = try Trainer(
          configuration: configuration, data: TrainingData(training: training), backend: CPUBackend(threads: threads), threads: threads,
          outputFolder: nil, reporter: ProgressReporter(style: .silent, totalEpochs: 1), prefetch: false,
          normalization: (recorded.mean, recorded.std))
        try trainer.initializeWeights(from: checkpoint)
        folds.append(Predictions(logits: trainer.evaluate(newData, testTimeAugmentation: configuration.testTimeAugmentation).logits, classes: training.classes))
      }
      memberPredictions.append(Predictions.mixture(folds, weights: [Double](repeating: 1, count: folds.count)))
      FileHandle.standardError.write(Data("predict: \(name): \(folds.count) fold models\n".utf8))
    }
    let ensemble = submitted.combiner.apply(memberPredictions)
    let classNames = training.classNames ?? (0..<training.classes).map(String.init)
    var text = "id,label" + (probabilities ? classNames.map { ",\($0)" }.joined() : "") + "\n"
    for row in 0..<ensemble.rows {
      text += "\(newData.ids?[row] ?? String(row)),\(classNames[ensemble.predictedClass(row: row)])"
      if probabilities {
        for c in 0..<ensemble.classes { text += String(format: ",%.6f", exp(ensemble.logProbabilities[row * ensemble.classes + c])) }
      }
      text += "\n"
    }
    try FileBytes.writeAtomically(Array(text.utf8), to: output)
    if newData.isLabelled {
      let metrics = ensemble.metrics(labels: newData.labels)
      print(String(format: "%@ on %d labelled examples: accuracy %.4f, balanced accuracy %.4f, lowest recall %.3f",
        submitted.method, newData.count, metrics.accuracy, metrics.balancedAccuracy, metrics.lowestRecall))
    }
    print("wrote \(output) (\(ensemble.rows) rows, \(submitted.method))")
  }
}
