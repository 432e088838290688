import CUDA
import Cluster
import Data
import Ensemble
import Experiment
import Foundation
import NN
import Tensor
import Training
import Wire
import RunLayout
import Search

/// What a task's lease carries: the experiment itself (so a worker needs only the data),
/// the variant and the fold.
struct TaskSettings: Codable {
  var experiment: String
  var file: String
  var variant: String
  var fold: Int
  /// A search's trial or chosen member: the sampled settings put over the experiment's
  /// training defaults (nil: the variant's own settings).
  var overrides: [SearchResults.Setting]? = nil

  /// Whether the task is a search's trial (scored on its fold; no test logits).
  func isSearchTrial(in experiment: Experiment) -> Bool { experiment.search != nil && variant.hasPrefix("trial-") && overrides != nil }
}

/// Everything a coordinator needs to schedule an experiment.
struct ExperimentSetup {
  let experiment: Experiment
  let data: ExperimentData
  let tasks: [String]
  /// Phases after the members': each Noisy Student round's tasks, then the distilled
  /// student and its teacher-less twin; a phase starts when the earlier ones are done.
  let laterPhases: [[String]]
  var laterTasks: [String] { laterPhases.flatMap { $0 } }
  /// What each later phase is (`laterPhases[i]` is phase i + 1).
  let laterPhaseKinds: [PhaseKind]
  /// A search's successive halving (its rungs' reports), when it has one.
  let rungs: SearchRungs?
  let settings: [String: String]

  enum PhaseKind: Equatable {
    /// The members a finished search chose, on every fold.
    case searchMembers
    case noisyRound(Int)
    case students
  }

  /// `runDirectory` overrides the file's (a run directory's own copy of its experiment).
  init(file: String, runDirectory: String? = nil) throws {
    var experiment = try Experiment.read(file)
    if let runDirectory { experiment.runDirectory = runDirectory }
    // After a search, its chosen members (the report, `quorum ensemble`, a restart).
    experiment = try experiment.applyingSearchResults()
    self.experiment = experiment
    data = try ExperimentData.load(experiment)
    // A weighted recall with the wrong number of weights is refused before any task runs.
    do { try experiment.ensemble.objective.check(classes: data.training.classes) } catch let error as MetricError {
      throw ExperimentError(file: file, line: nil, "the ensemble's objective: \(error)")
    }
    let text = String(decoding: try FileBytes.read(file), as: UTF8.self)
    let encoder = JSONEncoder()
    var settings: [String: String] = [:]
    for task in experiment.tasks + experiment.noisyTasks.flatMap({ $0 }) {
      let json = try encoder.encode(TaskSettings(experiment: text, file: file, variant: task.variant, fold: task.fold))
      settings[task.id] = String(decoding: json, as: UTF8.self)
    }
    // Refits need nothing from the ensemble: they run beside the members.
    var firstTasks = experiment.tasks.map(\.id) + (experiment.refit?.taskIDs ?? [])
    for (task, variant) in zip(experiment.refit?.taskIDs ?? [], experiment.refit?.variants ?? []) {
      settings[task] = String(decoding: try encoder.encode(TaskSettings(experiment: text, file: file, variant: variant, fold: -1)), as: UTF8.self)
    }
    var phases = experiment.noisyTasks.map { $0.map(\.id) }
    var kinds = phases.indices.map { PhaseKind.noisyRound($0 + 1) }
    if let plan = experiment.distill {
      phases.append(plan.taskIDs)
      kinds.append(.students)
      for (task, variant) in zip(plan.taskIDs, [plan.student.name, plan.alone.name]) {
        settings[task] = String(decoding: try encoder.encode(TaskSettings(experiment: text, file: file, variant: variant, fold: -1)), as: UTF8.self)
      }
    }
    if let plan = experiment.search {
      // The trials proposed so far (the journal's: a restarted coordinator's), each on its
      // folds; the others are proposed as the run goes (`SearchTrialSource`); then the
      // chosen members.
      firstTasks = []
      for proposal in try Self.trialProposals(runDirectory: experiment.runDirectory) {
        let payloads = try Self.trialPayloads(proposal.trial, proposal.settings, plan, text: text, file: file)
        settings.merge(payloads) { $1 }
        firstTasks += Self.trialTasks(proposal.trial, plan)
      }
      phases = [experiment.tasks.map(\.id)]
      kinds = [.searchMembers]
    }
    tasks = firstTasks
    rungs = experiment.search.flatMap(SearchRungs.init)
    // The stops made so far (a restarted coordinator, a report made afterwards), replayed
    // from the rung reports in the journal.
    rungs?.replay(journal: RunDirectory(experiment.runDirectory).journal)
    laterPhases = phases
    laterPhaseKinds = kinds
    self.settings = settings
  }

  /// A later phase's payloads: the search's next trials or chosen members, pseudo-labels
  /// for a Noisy Student round, teacher targets for the students.
  func preparePhase(_ phase: Int) throws -> [String: (settings: String, tensors: [WireTensor])] {
    switch laterPhaseKinds[phase - 1] {
    case .searchMembers: return try prepareSearchMembers()
    case .noisyRound(let round): return try prepareNoisyRound(round)
    case .students: return try prepareStudents()
    }
  }

  /// What starting a later phase's preparation is logged as.
  func describePhase(_ phase: Int) -> String {
    switch laterPhaseKinds[phase - 1] {
    case .searchMembers: return "search: every trial is done: choosing the best configurations as members"
    case .noisyRound(let round): return "the tasks before Noisy Student round \(round) are done: pseudo-labelling the test images with their ensemble"
    case .students: return "every member is done: building the ensemble that teaches the student"
    }
  }

  /// Round r's pseudo-labels: the current ensemble's (members and earlier rounds) confident
  /// test predictions, balanced over the classes, as (image index, label) rows.
  func prepareNoisyRound(_ round: Int) throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.noisyStudent else { return [:] }
    let (_, teacher) = try RunReport.combine(setup: self)
    guard let test = teacher?.test else {
      throw ExperimentError(file: experiment.file, line: nil, "Noisy Student needs test images to pseudo-label, and an ensemble to label them")
    }
    let chosen = PseudoLabels.select(test, confidence: plan.confidence, perClass: plan.perClass)
    // What the round will see, and the classes it will not: said before hours are spent.
    let counts = PseudoLabels.confidentCounts(test, confidence: plan.confidence)
    let classNames = data.training.classNames ?? (0..<counts.count).map(String.init)
    var summary = "Noisy Student round \(round): \(chosen.count) pseudo-labels from the test images the ensemble gives ≥ \(plan.confidence); "
      + "confident images per class: " + zip(classNames, counts).map { "\($0) \($1)" }.joined(separator: ", ")
    let missing = zip(classNames, counts).filter { $0.1 == 0 }.map(\.0)
    if !missing.isEmpty {
      summary += "\nwarning: no pseudo-label for \(missing.joined(separator: ", ")): the round's students see extra images of the other classes only "
        + "and lean towards them; lower noisy_student confidence (Xie et al. used 0.3)"
    }
    print(summary)
    guard !chosen.isEmpty else {
      throw ExperimentError(file: experiment.file, line: nil, "no test image reaches the pseudo-label confidence \(plan.confidence): lower noisy_student confidence")
    }
    let pseudo = WireTensor(name: "pseudo_labels", shape: [chosen.count, 2], values: chosen.flatMap { [Float($0.index), Float($0.label)] })
    var payloads: [String: (settings: String, tensors: [WireTensor])] = [:]
    for task in experiment.noisyTasks[round - 1] { payloads[task.id] = (settings[task.id] ?? "{}", [pseudo]) }
    return payloads
  }

  /// The later tasks' payloads, once every member is done: the teacher's targets (the
  /// submitted ensemble's out-of-fold probabilities on the training set, its test
  /// probabilities on the test images) for the student; nothing for its twin.
  func prepareStudents() throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.distill else { return [:] }
    let (_, teacher) = try RunReport.combine(setup: self)
    guard let teacher else { throw ExperimentError(file: experiment.file, line: nil, "no complete member to distill from") }
    let training = data.training
    let classes = training.classes
    var tensors = [WireTensor(
      name: "teacher_train", shape: [training.count, classes],
      values: plan.distillation.targets(teacher: teacher.outOfFold, labels: training.labels))]
    if plan.unlabelled, let test = teacher.test {
      tensors.append(WireTensor(name: "teacher_test", shape: [test.rows, classes], values: plan.distillation.targets(teacher: test, labels: nil)))
    }
    let (student, alone) = (plan.taskIDs[0], plan.taskIDs[1])
    return [student: (settings[student] ?? "{}", tensors), alone: (settings[alone] ?? "{}", [])]
  }

  /// The run directory's fixed files: the experiment as given and the fold assignment.
  func prepareRunDirectory() throws {
    try Folders.create(experiment.runDirectory)
    let run = RunDirectory(experiment.runDirectory)
    try FileBytes.writeAtomically(try FileBytes.read(experiment.file), to: run.experiment)
    try data.folds.write(to: run.folds)
  }
}

/// Trains tasks on a worker: the variant's configuration on the fold's split; returns the
/// out-of-fold logits ("oof", the fold's validation examples in example order) and the
/// test logits ("test").
///
/// Tasks may run at once (a worker with several members per device), each on a backend of
/// its own: the experiment and its data are loaded once and shared.
final class TaskRunner: @unchecked Sendable {
  /// CPU threads of each task.
  let threads: Int
  /// The devices tasks train on: one, or each GPU of `cuda:all`. A task goes to the one
  /// with the fewest tasks training on it (the first of those).
  let devices: [ComputeDevice]
  /// Where a task's device is said (the worker's log).
  let log: (String) -> Void
  private let lock = NSLock()
  private var cache: (key: String, experiment: Experiment, data: ExperimentData)?
  /// Served data sets (a lease that names one), fetched once and kept by hash.
  let dataCache: DataCache?
  /// Per device, backends not in use. A backend is made once per task slot (a CUDA device
  /// compiles or loads its kernels as it starts, each with a stream of its own) and made
  /// again after a task it failed (a failed backend skips everything).
  private var idle: [ComputeDevice: [Backend]] = [:]
  /// Per device, tasks training on it now.
  private var training: [ComputeDevice: Int] = [:]

  /// The leases its worker's coordinator asked to end early.
  let stops: StopRequests
  /// How long a search trial waits at a rung for the coordinator's stop.
  static let rungVerdictWait = 1.0

  /// The last epoch a trainer reported (written and read on its task's thread).
  final class EpochCounter: @unchecked Sendable { var value = 0 }

  init(
    threads: Int, devices: [ComputeDevice], stops: StopRequests = StopRequests(), log: @escaping (String) -> Void = { _ in },
    dataCache: DataCache? = nil
  ) {
    precondition(!devices.isEmpty, "a task runner trains on at least one device")
    self.stops = stops
    self.dataCache = dataCache
    self.threads = threads
    self.devices = devices
    self.log = log
  }

  /// A backend on every device, kept for the first tasks: a device that cannot start (no
  /// driver, a kernel that fails to load) stops the worker before it connects. Returns
  /// their names.
  func startDevices() throws -> [String] {
    try devices.map { device in
      let backend = try device.makeBackend(threads: threads)
      lock.lock()
      idle[device, default: []].append(backend)
      lock.unlock()
      return backend.name
    }
  }

  /// Runs `body` on a backend of its own, on the least busy device: one kept from an
  /// earlier task unless it failed, else a new one. Everything `body` made on it must be
  /// gone when it returns.
  func withBackend<T>(_ body: (Backend) throws -> T) throws -> T {
    lock.lock()
    let device = devices.min { training[$0, default: 0] < training[$1, default: 0] }!
    training[device, default: 0] += 1
    let kept = idle[device]?.popLast()
    lock.unlock()
    defer {
      lock.lock()
      training[device, default: 1] -= 1
      lock.unlock()
    }
    let backend = try kept ?? device.makeBackend(threads: threads)
    let result = try body(backend)
    if (try? backend.check()) != nil {
      lock.lock()
      idle[device, default: []].append(backend)
      lock.unlock()
    }
    return result
  }

  /// The experiment of these settings and its data, loaded once for every task of it: the
  /// data set the lease offers (served by the coordinator, cached by hash), else the one the
  /// experiment's paths name.
  func experiment(_ settings: TaskSettings, data offer: DataOffer?) throws -> (Experiment, ExperimentData) {
    lock.lock()
    defer { lock.unlock() }
    let key = settings.experiment + "\u{0}" + (offer?.hash ?? "paths")
    if cache?.key != key {
      let started = Date()
      let source: String
      if let offer, let dataCache {
        let data = try dataCache.load(offer)
        let experiment = try Experiment.parse(settings.experiment, file: settings.file, servedFolds: data.folds.count)
        cache = (key, experiment, data)
        source = "served data set \(offer.hash.prefix(12))…"
      } else {
        let experiment = try Experiment.parse(settings.experiment, file: settings.file)
        cache = (key, experiment, try ExperimentData.load(experiment))
        source = "experiment's paths"
      }
      log(String(format: "data ready in %.2f s (%d training images, from the %@)", Date().timeIntervalSince(started), cache!.data.training.count, source))
    }
    return (cache!.experiment, cache!.data)
  }

  /// What a task is: a variant on a fold (a member, or a Noisy Student round's), a refit
  /// on the whole training set, or a student. The worker runs it; the coordinator holds its
  /// result to what that role returns.
  enum Role {
    case member(Experiment.Variant, fold: Int)
    case refit(Experiment.Variant)
    case student(Experiment.Variant)
  }

  static func role(of settings: TaskSettings, in experiment: Experiment) throws -> Role {
    // A search's trial or chosen member: its sampled settings over the training defaults.
    if let overrides = settings.overrides, settings.fold >= 0 {
      guard let plan = experiment.search else {
        throw ExperimentError(file: settings.file, line: nil, "task \(settings.variant) brings search settings, and the experiment has no search: section")
      }
      return .member(plan.variant(settings.variant, overrides: overrides.map { ($0.key, SearchPlan.settingValue($0.value)) }), fold: settings.fold)
    }
    if settings.fold >= 0 {
      guard let variant = experiment.foldVariants.first(where: { $0.name == settings.variant }) else {
        throw ExperimentError(file: settings.file, line: nil, "no variant \(settings.variant)")
      }
      return .member(variant, fold: settings.fold)
    }
    if experiment.refit?.variants.contains(settings.variant) == true, let variant = experiment.variants.first(where: { $0.name == settings.variant }) {
      return .refit(variant)
    }
    guard let plan = experiment.distill, let variant = [plan.student, plan.alone].first(where: { $0.name == settings.variant }) else {
      throw ExperimentError(file: settings.file, line: nil, "no student \(settings.variant) (the experiment has no distill: section?)")
    }
    return .student(variant)
  }

  func run(_ task: TaskAssignment, progress: @escaping (ProgressReport) -> Void) throws -> TaskOutput {
    // Training is deterministic: a task that diverged diverges again on any attempt.
    do { return try runTask(task, progress: progress) } catch let error as TrainingError {
      if case .diverged = error { throw PermanentTaskFailure("\(error)") }
      throw error
    }
  }

  private func runTask(_ task: TaskAssignment, progress: @escaping (ProgressReport) -> Void) throws -> TaskOutput {
    let settings = try JSONDecoder().decode(TaskSettings.self, from: Data(task.settings.utf8))
    let (experiment, data) = try experiment(settings, data: task.data)
    let variant: Experiment.Variant
    switch try Self.role(of: settings, in: experiment) {
    case .refit(let refit):
      // A refit: the variant on the whole training set; test logits only.
      return try train(
        task, configuration: try Self.configuration(of: refit, for: data.training, file: settings.file),
        data: TrainingData(training: data.training, test: data.test), experiment: experiment, progress: progress)
    case .student(let student):
      return try runStudent(task, variant: student, settings: settings, experiment: experiment, data: data, progress: progress)
    case .member(let member, _): variant = member
    }
    let training = data.training
    let configuration = try Self.configuration(of: variant, for: training, file: settings.file)
    let split = data.folds.split(settings.fold)
    var foldTraining = training.subset(split.training)
    let test = settings.isSearchTrial(in: experiment) ? nil : data.test
    // A Noisy Student round: the pseudo-labelled test images join the training fold.
    if let pseudo = task.tensors.first(where: { $0.name == "pseudo_labels" }), let test = data.test {
      guard pseudo.shape.count == 2, pseudo.shape[1] == 2,
        pseudo.values.enumerated().allSatisfy({ $0.offset % 2 == 1 ? Int($0.element) < training.classes : Int($0.element) < test.count })
      else { throw ExperimentError(file: settings.file, line: nil, "task \(task.task): pseudo-labels out of range") }
      let rows = (0..<pseudo.shape[0]).map { (index: Int(pseudo.values[2 * $0]), label: Int32(pseudo.values[2 * $0 + 1])) }
      let images = test.subset(rows.map(\.index))
      foldTraining = foldTraining.appending(ImageDataset(
        pixels: images.pixels, labels: rows.map(\.label), height: test.height, width: test.width, channels: test.channels,
        classes: training.classes))
    }
    return try train(
      task, configuration: configuration,
      data: TrainingData(training: foldTraining, validation: training.subset(split.validation), test: test),
      experiment: experiment, progress: progress)
  }

  /// A variant's configuration for the data's images. Task outputs must not pick their
  /// own epoch (out-of-fold predictions would be selected on themselves): the last
  /// epoch's weights are kept.
  static func configuration(of variant: Experiment.Variant, for training: ImageDataset, file: String) throws -> TrainingConfiguration {
    var configuration = try variant.configuration(
      TrainingConfiguration(model: MobileNetV2Configuration(
        inputChannels: training.channels, classes: training.classes, imageHeight: training.height, imageWidth: training.width)),
      file: file)
    configuration.restoreBest = false
    // A task reports only its validation score each epoch; its test logits are made once,
    // at the end (the test set scored every epoch was work thrown away).
    configuration.testEvaluationInterval = 0
    return configuration
  }

  /// Trains, reporting every epoch, and returns the task's outputs: the validation logits
  /// ("oof", when there is a validation set), the test logits ("test") and the final
  /// weights ("checkpoint", those that made the logits; loadable by torchvision).
  func train(
    _ task: TaskAssignment, configuration: TrainingConfiguration, data: TrainingData, experiment: Experiment,
    progress: @escaping (ProgressReport) -> Void
  ) throws -> TaskOutput {
    try withBackend { backend in
      if devices.count > 1 { log("\(task.task) attempt \(task.attempt) trains on \(backend.name)") }
      return try train(task, configuration: configuration, data: data, experiment: experiment, backend: backend, progress: progress)
    }
  }

  private func train(
    _ task: TaskAssignment, configuration: TrainingConfiguration, data: TrainingData, experiment: Experiment, backend: Backend,
    progress: @escaping (ProgressReport) -> Void
  ) throws -> TaskOutput {
    let trainer = try Trainer(
      configuration: configuration, data: data, backend: backend, threads: threads, outputFolder: nil,
      reporter: ProgressReporter(style: .silent, totalEpochs: configuration.epochs))
    // A search trial under successive halving waits a moment at each rung for the
    // coordinator's verdict on the report it just sent (a stop comes back in milliseconds;
    // silence means go on), so that a hopeless trial ends at the rung, not an epoch later.
    let settings = try? JSONDecoder().decode(TaskSettings.self, from: Data(task.settings.utf8))
    let rungs = settings?.isSearchTrial(in: experiment) == true ? Set(experiment.search?.halving?.rungs ?? []) : []
    let epochs = EpochCounter()
    trainer.shouldStop = { [stops] in
      let stopped = { stops.isRequested(task: task.task, attempt: task.attempt) }
      if rungs.contains(epochs.value) {
        let deadline = Date().addingTimeInterval(Self.rungVerdictWait)
        while !stopped() && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
      }
      return stopped()
    }
    trainer.onEpoch = { record in
      epochs.value = record.epoch
      progress(ProgressReport(
        task: task.task, attempt: task.attempt, epoch: record.epoch, loss: record.trainingLoss,
        validationMetric: record.validation?.score(configuration.selectionMetric), imagesPerSecond: record.imagesPerSecond))
    }
    let result = try trainer.run()
    // A member fine-tuned from given weights: what it took, adapted, left new and dropped.
    if let report = trainer.initializationReport, let start = configuration.initialization {
      log("\(task.task) initialised from \(start.path): \(report.summary)")
    }
    let classes = configuration.model.classes
    let precision = WirePrecision(rawValue: experiment.logitsPrecision) ?? .float32
    var tensors: [WireTensor] = []
    if let validation = data.validation {
      tensors.append(WireTensor(name: "oof", shape: [validation.count, classes], values: result.validationLogits ?? [], precision: precision))
    }
    if let test = result.testLogits {
      tensors.append(WireTensor(name: "test", shape: [test.count / classes, classes], values: test, precision: precision))
    }
    let checkpoint = WireFile(name: "checkpoint", bytes: try ModelCheckpoint.encoded(trainer.model, description: trainer.description))
    return TaskOutput(tensors: tensors, files: [checkpoint])
  }
}

extension TaskRunner {
  /// A student (fold -1: the whole training set): towards the teacher's targets when the
  /// task brings them (and on the test images too, where it brings those), else on the
  /// labels; returns its test logits and checkpoint.
  func runStudent(
    _ task: TaskAssignment, variant: Experiment.Variant, settings: TaskSettings, experiment: Experiment, data: ExperimentData,
    progress: @escaping (ProgressReport) -> Void
  ) throws -> TaskOutput {
    var training = data.training
    let configuration = try Self.configuration(of: variant, for: training, file: settings.file)
    var targets: [Float]?
    if let teacher = task.tensors.first(where: { $0.name == "teacher_train" }) {
      guard teacher.shape == [training.count, training.classes] else {
        throw ExperimentError(file: settings.file, line: nil, "task \(task.task): teacher targets of shape \(teacher.shape) for \(training.count) examples of \(training.classes) classes")
      }
      targets = teacher.values
      if let unlabelled = task.tensors.first(where: { $0.name == "teacher_test" }), let test = data.test, unlabelled.shape == [test.count, training.classes] {
        // The test images join the training set with the teacher's targets only; their
        // "labels" (the teacher's classes) serve the samplers, not the loss.
        let classes = training.classes
        let labels = (0..<test.count).map { row -> Int32 in
          let slice = unlabelled.values[(row * classes)..<((row + 1) * classes)]
          return Int32(slice.indices.max { slice[$0] < slice[$1] }! - row * classes)
        }
        training = training.appending(ImageDataset(
          pixels: test.pixels, labels: labels, height: test.height, width: test.width, channels: test.channels, classes: training.classes))
        targets! += unlabelled.values
      }
    }
    return try train(
      task, configuration: configuration, data: TrainingData(training: training, test: data.test, targets: targets),
      experiment: experiment, progress: progress)
  }
}

/// The end of a run: every member's out-of-fold scores, then the ensembles built from them
/// (Ensemble), written to the run directory.
enum RunReport {
  /// The report's text, and the submitted method (the teacher of a distilled student).
  static func combine(setup: ExperimentSetup) throws -> (text: String, submitted: MethodResult?) {
    // A search's members as it chose them (it may have chosen since the setup was made).
    let experiment = try setup.experiment.applyingSearchResults()
    let training = setup.data.training
    let classes = training.classes
    var (members, incomplete) = try MemberLibrary.load(
      runDirectory: experiment.runDirectory, variants: experiment.foldVariants.map(\.name), folds: setup.data.folds, classes: classes)
    // A Noisy Student round not run yet is not missing.
    let rounds = Set(experiment.noisyStudent?.variants.map(\.name) ?? [])
    incomplete.removeAll { rounds.contains($0) }
    let test = setup.data.test
    let testLabels = test?.isLabelled == true ? test?.labels : nil
    let memberScores = EnsembleOutputs.scores(members, labels: training.labels, testLabels: testLabels)
    var lines = [
      "| member | OOF accuracy | OOF balanced accuracy | OOF macro-F1 | OOF lowest recall | test balanced accuracy |",
      "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (member, score) in zip(members, memberScores) {
      let m = score.outOfFold
      lines.append(String(
        format: "| %@ | %.4f | %.4f | %.4f | %.3f | %@ |", member.name, m.accuracy, m.balancedAccuracy, m.macroF1, m.lowestRecall,
        score.test.map { String(format: "%.4f", $0.balancedAccuracy) } ?? "—"))
    }
    for name in incomplete { lines.append("| \(name) | incomplete (a fold failed) | | | | |") }
    guard !members.isEmpty else { return (lines.joined(separator: "\n"), nil) }

    let methods = EnsembleMethods(members: members, labels: training.labels, folds: setup.data.folds, settings: experiment.ensemble)
    var results = methods.run()
    var scores = EnsembleOutputs.scores(results, labels: training.labels, testLabels: testLabels)
    var chosen = EnsembleOutputs.chosen(scores, objective: experiment.ensemble.objective)
    // The chosen combiner on the members retrained on all data (refit:), submitted if asked.
    var refitMembers: [String]?
    if let plan = experiment.refit, let refitted = EnsembleMethods.refitted(results[chosen], members: members) {
      results.append(refitted)
      scores += EnsembleOutputs.scores([refitted], labels: training.labels, testLabels: testLabels)
      if plan.submit {
        chosen = results.count - 1
        refitMembers = members.filter { $0.refitTest != nil }.map(\.name)
      }
    }
    let temperatures = methods.memberTemperatures()
    try EnsembleOutputs.write(
      results, scores: scores, memberScores: memberScores, chosen: chosen, members: members.map(\.name),
      classNames: training.classNames ?? (0..<classes).map(String.init), testIDs: test?.ids, settings: experiment.ensemble,
      memberTemperatures: temperatures, refit: refitMembers, runDirectory: experiment.runDirectory)
    var page = ReportPage(
      experiment: experiment.name, version: Quorum.version, commandLine: CommandLine.arguments.joined(separator: " "),
      experimentText: String(decoding: (try? FileBytes.read(experiment.file)) ?? [], as: UTF8.self),
      classNames: training.classNames ?? (0..<classes).map(String.init), training: training, members: members, results: results,
      scores: scores, chosen: chosen, memberTemperatures: temperatures, epochs: ReportPage.epochs(runDirectory: experiment.runDirectory))
    // Grad-CAM of the mistakes: from the member the submitted method leans on most (the
    // best member where it has no weights), each example by its fold's model.
    let weights = results[chosen].weights ?? results[0].weights ?? []
    let leading = members[weights.indices.max { weights[$0] < weights[$1] } ?? 0].name
    page.objective = experiment.ensemble.objective
    page.search = try setup.searchReport()
    let explainer = experiment.foldVariants.first { $0.name == leading }.flatMap {
      try? FoldModelExplainer(runDirectory: experiment.runDirectory, variant: $0, training: training, folds: setup.data.folds, file: experiment.file)
    }
    let explained = explainer.map { explainer in page.explained(by: "\(leading)'s fold models") { explainer.heatMap(row: $0, classIndex: $1) } } ?? page
    try FileBytes.writeAtomically(Array(try explained.html().utf8), to: RunDirectory(experiment.runDirectory).report)
    lines += ["", "Ensembles (fitted methods scored by cross-validation over the folds; \(experiment.ensemble.objective.spelling) picks the submission):", ""]
    lines.append(EnsembleOutputs.table(scores, chosen: chosen, objective: experiment.ensemble.objective))
    lines += studentLines(setup: setup, testLabels: testLabels)
    return (lines.joined(separator: "\n"), results[chosen])
  }

  /// The students' test scores, where they are stored (they have no out-of-fold scores:
  /// each was trained on the whole training set).
  static func studentLines(setup: ExperimentSetup, testLabels: [Int32]?) -> [String] {
    guard let plan = setup.experiment.distill, let testLabels else { return [] }
    var lines = ["", "Students (trained on the whole training set; test scores):", "", "| student | test balanced accuracy | test lowest recall | test NLL |", "| --- | ---: | ---: | ---: |"]
    for (variant, label) in [(plan.student.name, "distilled from the submitted ensemble"), (plan.alone.name, "the same student on the labels alone")] {
      let path = RunDirectory(setup.experiment.runDirectory).refitTest(variant: variant)
      guard let (shape, values) = try? NumPy.readFloat32(path), shape.count == 2 else {
        lines.append("| \(variant) (\(label)) | not trained | | |")
        continue
      }
      let m = Predictions(logits: values, classes: shape[1]).metrics(labels: testLabels)
      lines.append(String(format: "| %@ (%@) | %.4f | %.3f | %.4f |", variant, label, m.balancedAccuracy, m.lowestRecall, m.negativeLogLikelihood))
    }
    return lines
  }
}

/// Grad-CAM heat maps of training examples, each from the fold model of a variant that did
/// not train on it (checkpoints/VARIANT/foldK.safetensors), with that checkpoint's
/// normalisation.
final class FoldModelExplainer {
  let runDirectory: String
  let variant: Experiment.Variant
  let training: ImageDataset
  let folds: FoldAssignment
  let configuration: MobileNetV2Configuration
  private var loaded: [Int: (cam: GradCAM, assembler: BatchAssembler)] = [:]

  /// Nil when the variant's checkpoints are not all in the run directory.
  init?(runDirectory: String, variant: Experiment.Variant, training: ImageDataset, folds: FoldAssignment, file: String) throws {
    let paths = (0..<folds.count).map { RunDirectory(runDirectory).memberCheckpoint(variant: variant.name, fold: $0) }
    guard paths.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { return nil }
    self.runDirectory = runDirectory
    self.variant = variant
    self.training = training
    self.folds = folds
    configuration = try TaskRunner.configuration(of: variant, for: training, file: file).model
  }

  func heatMap(row: Int, classIndex: Int) -> (values: [Float], height: Int, width: Int)? {
    let fold = Int(folds.fold[row])
    if loaded[fold] == nil {
      let path = RunDirectory(runDirectory).memberCheckpoint(variant: variant.name, fold: fold)
      guard let predictor = try? Predictor(
        checkpoint: path, configuration: configuration, expected: "the experiment's \(variant.name)", batchSize: 1,
        backend: CPUBackend(threads: 1), threads: 1)
      else { return nil }
      loaded[fold] = (GradCAM(model: predictor.model), predictor.assembler)
    }
    guard let (cam, assembler) = loaded[fold] else { return nil }
    // Normalised as in training, by the assembler training uses (no augmentation).
    let image = Tensor(shape: [training.imageSize])
    var label: Int32 = 0
    assembler.assemble(training, indices: [row], augmentation: .none, seed: 0, epoch: 0, images: image, labels: &label)
    return cam.heatMap(image, classIndex: classIndex)
  }
}
