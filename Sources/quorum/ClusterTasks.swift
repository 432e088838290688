import Cluster
import Data
import Ensemble
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

  /// `runDirectory` overrides the file's (a run directory's own copy of its experiment).
  init(file: String, runDirectory: String? = nil) throws {
    var experiment = try Experiment.read(file)
    if let runDirectory { experiment.runDirectory = runDirectory }
    self.experiment = experiment
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

/// The end of a run: every member's out-of-fold scores, then the ensembles built from them
/// (Ensemble), written to the run directory.
enum OutOfFold {
  static func combine(setup: ExperimentSetup) throws -> String {
    let experiment = setup.experiment
    let training = setup.data.training
    let classes = training.classes
    let (members, incomplete) = try MemberLibrary.load(
      runDirectory: experiment.runDirectory, variants: experiment.variants.map(\.name), folds: setup.data.folds, classes: classes)
    var lines = ["| member | OOF accuracy | balanced accuracy | macro-F1 | lowest recall |", "| --- | ---: | ---: | ---: | ---: |"]
    for member in members {
      let m = member.outOfFold.metrics(labels: training.labels)
      lines.append(String(format: "| %@ | %.4f | %.4f | %.4f | %.3f |", member.name, m.accuracy, m.balancedAccuracy, m.macroF1, m.lowestRecall))
    }
    for name in incomplete { lines.append("| \(name) | incomplete (a fold failed) | | | |") }
    guard !members.isEmpty else { return lines.joined(separator: "\n") }

    let methods = EnsembleMethods(members: members, labels: training.labels, folds: setup.data.folds, settings: experiment.ensemble)
    let results = methods.run()
    let test = setup.data.test
    let scores = EnsembleOutputs.scores(results, labels: training.labels, testLabels: test?.isLabelled == true ? test?.labels : nil)
    let chosen = EnsembleOutputs.chosen(scores, objective: experiment.ensemble.objective)
    let temperatures = methods.memberTemperatures()
    try EnsembleOutputs.write(
      results, scores: scores, chosen: chosen, members: members.map(\.name),
      classNames: training.classNames ?? (0..<classes).map(String.init), testIDs: test?.ids, settings: experiment.ensemble,
      memberTemperatures: temperatures, runDirectory: experiment.runDirectory)
    let page = ReportPage(
      experiment: experiment.name, version: Quorum.version, commandLine: CommandLine.arguments.joined(separator: " "),
      experimentText: String(decoding: (try? FileBytes.read(experiment.file)) ?? [], as: UTF8.self),
      classNames: training.classNames ?? (0..<classes).map(String.init), training: training, members: members, results: results,
      scores: scores, chosen: chosen, memberTemperatures: temperatures, epochs: ReportPage.epochs(runDirectory: experiment.runDirectory))
    try FileBytes.writeAtomically(Array(try page.html().utf8), to: experiment.runDirectory + "/report.html")
    lines += ["", "Ensembles (fitted methods scored by cross-validation over the folds; \(experiment.ensemble.objective.rawValue) picks the submission):", ""]
    lines.append(EnsembleOutputs.table(scores, chosen: chosen))
    return lines.joined(separator: "\n")
  }
}
