import Cluster
import Data
import Experiment
import Foundation
import NN
import Tensor
import Training
import Wire

/// What a task's lease carries: the experiment itself (so a worker needs only the data),
/// the variant and the fold.
struct TaskSettings: Codable {
  var experiment: String
  var file: String
  var variant: String
  var fold: Int
}

/// Everything a coordinator needs to schedule an experiment.
struct ExperimentSetup {
  let experiment: Experiment
  let data: ExperimentData
  let tasks: [String]
  let settings: [String: String]

  init(file: String) throws {
    experiment = try Experiment.read(file)
    data = try ExperimentData.load(experiment)
    let text = String(decoding: try FileBytes.read(file), as: UTF8.self)
    let encoder = JSONEncoder()
    var settings: [String: String] = [:]
    for task in experiment.tasks {
      let json = try encoder.encode(TaskSettings(experiment: text, file: file, variant: task.variant, fold: task.fold))
      settings[task.id] = String(decoding: json, as: UTF8.self)
    }
    tasks = experiment.tasks.map(\.id)
    self.settings = settings
  }

  /// The run directory's fixed files: the experiment as given and the fold assignment.
  func prepareRunDirectory() throws {
    try FileManager.default.createDirectory(atPath: experiment.runDirectory, withIntermediateDirectories: true)
    try FileBytes.writeAtomically(try FileBytes.read(experiment.file), to: experiment.runDirectory + "/experiment.yaml")
    try data.folds.write(to: experiment.runDirectory + "/folds.npy")
  }
}

/// Trains tasks on a worker: the variant's configuration on the fold's split; returns the
/// out-of-fold logits ("oof", the fold's validation examples in example order) and the
/// test logits ("test").
final class TaskRunner {
  let threads: Int
  private var cache: (text: String, experiment: Experiment, data: ExperimentData)?

  init(threads: Int) { self.threads = threads }

  func run(_ task: TaskAssignment, progress: @escaping (ProgressReport) -> Void) throws -> TaskOutput {
    let settings = try JSONDecoder().decode(TaskSettings.self, from: Data(task.settings.utf8))
    if cache?.text != settings.experiment {
      let experiment = try Experiment.parse(settings.experiment, file: settings.file)
      cache = (settings.experiment, experiment, try ExperimentData.load(experiment))
    }
    let (_, experiment, data) = cache!
    guard let variant = experiment.variants.first(where: { $0.name == settings.variant }) else {
      throw ExperimentError(file: settings.file, line: nil, "no variant \(settings.variant)")
    }
    let training = data.training
    var configuration = try variant.configuration(
      TrainingConfiguration(model: MobileNetV2Configuration(
        inputChannels: training.channels, classes: training.classes, imageHeight: training.height, imageWidth: training.width)),
      file: settings.file)
    // Out-of-fold predictions must not pick their own epoch: keep the last epoch's weights.
    configuration.restoreBest = false
    let split = data.folds.split(settings.fold)
    let trainer = try Trainer(
      configuration: configuration,
      data: TrainingData(training: training.subset(split.training), validation: training.subset(split.validation), test: data.test),
      backend: CPUBackend(threads: threads), threads: threads, outputFolder: nil,
      reporter: ProgressReporter(style: .silent, totalEpochs: configuration.epochs))
    trainer.onEpoch = { record in
      progress(ProgressReport(
        task: task.task, attempt: task.attempt, epoch: record.epoch, loss: record.trainingLoss,
        validationMetric: record.validation?.balancedAccuracy, imagesPerSecond: record.imagesPerSecond))
    }
    let result = try trainer.run()
    let classes = configuration.model.classes
    let precision = WirePrecision(rawValue: experiment.logitsPrecision) ?? .float32
    var tensors = [WireTensor(name: "oof", shape: [split.validation.count, classes], values: result.validationLogits ?? [], precision: precision)]
    if let test = result.testLogits {
      tensors.append(WireTensor(name: "test", shape: [test.count / classes, classes], values: test, precision: precision))
    }
    // The final weights (those that made the out-of-fold logits), loadable by torchvision.
    let checkpoint = WireFile(name: "checkpoint", bytes: try ModelCheckpoint.encoded(trainer.model, description: trainer.description))
    return TaskOutput(tensors: tensors, files: [checkpoint])
  }
}

/// Out-of-fold assembly: every variant's stored fold logits put back in example order.
enum OutOfFold {
  /// [n, classes] logits of a variant, or nil when a fold is missing.
  static func logits(variant: String, runDirectory: String, folds: FoldAssignment, classes: Int) throws -> [Float]? {
    var assembled = [Float](repeating: 0, count: folds.fold.count * classes)
    for fold in 0..<folds.count {
      let path = ResultStore(runDirectory: runDirectory).path(task: "\(variant)/fold\(fold)", tensor: "oof")
      guard FileManager.default.fileExists(atPath: path) else { return nil }
      let (shape, values) = try NumPy.readFloat32(path)
      let rows = folds.split(fold).validation
      guard shape == [rows.count, classes] else {
        throw DataError(file: path, "has shape \(shape), fold \(fold) holds \(rows.count) examples of \(classes) classes")
      }
      for (row, example) in rows.enumerated() {
        for c in 0..<classes { assembled[example * classes + c] = values[row * classes + c] }
      }
    }
    return assembled
  }

  /// Softmax probabilities averaged over members, as log-probabilities.
  static func average(_ members: [[Float]], classes: Int) -> [Float] {
    var sum = [Double](repeating: 0, count: members[0].count)
    for logits in members {
      for row in 0..<(logits.count / classes) {
        let slice = logits[(row * classes)..<((row + 1) * classes)]
        let largest = Double(slice.max()!)
        let exps = slice.map { exp(Double($0) - largest) }
        let total = exps.reduce(0, +)
        for c in 0..<classes { sum[row * classes + c] += exps[c] / total / Double(members.count) }
      }
    }
    return sum.map { Float(log(max($0, 1e-30))) }
  }

  /// The end-of-run table: every member's out-of-fold score and the plain average's.
  static func table(setup: ExperimentSetup) throws -> String {
    let training = setup.data.training
    let classes = training.classes
    var lines = ["| member | OOF accuracy | balanced accuracy | macro-F1 | lowest recall |", "| --- | ---: | ---: | ---: | ---: |"]
    var members: [[Float]] = []
    func row(_ name: String, _ logits: [Float]) {
      let m = logits.withUnsafeBufferPointer { ClassificationMetrics.compute(logits: $0.baseAddress!, labels: training.labels, classes: classes) }
      lines.append(String(format: "| %@ | %.4f | %.4f | %.4f | %.3f |", name, m.accuracy, m.balancedAccuracy, m.macroF1, m.lowestRecall))
    }
    for variant in setup.experiment.variants {
      guard let logits = try logits(variant: variant.name, runDirectory: setup.experiment.runDirectory, folds: setup.data.folds, classes: classes) else {
        lines.append("| \(variant.name) | incomplete (a fold failed) | | | |")
        continue
      }
      members.append(logits)
      row(variant.name, logits)
    }
    if members.count > 1 { row("plain average of \(members.count)", average(members, classes: classes)) }
    return lines.joined(separator: "\n")
  }
}
