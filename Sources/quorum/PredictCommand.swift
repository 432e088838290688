import ArgumentParser
import Data
import Ensemble
import Files
import Foundation
import Pipeline

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
    let run = try RunPrediction(runDirectory: runDirectory, data: data)
    let augmentation = { (variant: TestTimeAugmentation) in
      TestTimeAugmentation(flips: ttaFlips ?? variant.flips, shift: ttaShift ?? variant.shift)
    }
    let outcome = student
      ? try run.student(threads: threads, testTimeAugmentation: augmentation)
      : try run.ensemble(threads: threads, testTimeAugmentation: augmentation) {
        FileHandle.standardError.write(Data("predict: \($0)\n".utf8))
      }
    let (predictions, training, newData) = (outcome.predictions, run.training, run.data)
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
        outcome.method, newData.count, metrics.accuracy, metrics.balancedAccuracy, metrics.lowestRecall))
    }
    print("wrote \(output) (\(predictions.rows) rows, \(outcome.method))")
  }
}
