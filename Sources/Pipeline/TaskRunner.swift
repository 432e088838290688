import CUDA
import Cluster
import Data
import Experiment
import Foundation
import NN
import Tensor
import Training
import Wire

/// Trains tasks on a worker: the variant's configuration on the fold's split; returns the
/// out-of-fold logits ("oof", the fold's validation examples in example order) and the
/// test logits ("test").
///
/// A task comes as its specification (`TaskSpecification`, resolved by the coordinator):
/// the runner parses no experiment file. Tasks may run at once (a worker with several
/// members per device), each on a backend of its own: their data set is loaded once and
/// shared.
public final class TaskRunner: @unchecked Sendable {
  /// CPU threads of each task.
  public let threads: Int
  /// The devices tasks train on: one, or each GPU of `cuda:all`. A task goes to the one
  /// with the fewest tasks training on it (the first of those).
  public let devices: [ComputeDevice]
  /// Where a task's device is said (the worker's log).
  public let log: (String) -> Void
  private let lock = NSLock()
  private var cache: (key: String, data: ExperimentData)?
  /// Served data sets (a lease that names one), fetched once and kept by hash.
  public let dataCache: DataCache?
  /// Per device, backends not in use. A backend is made once per task slot (a CUDA device
  /// compiles or loads its kernels as it starts, each with a stream of its own) and made
  /// again after a task it failed (a failed backend skips everything).
  private var idle: [ComputeDevice: [Backend]] = [:]
  /// Per device, tasks training on it now.
  private var training: [ComputeDevice: Int] = [:]

  /// The leases its worker's coordinator asked to end early.
  public let stops: StopRequests
  /// How long a search trial waits at a rung for the coordinator's stop.
  public static let rungVerdictWait = 1.0

  /// The last epoch a trainer reported (written and read on its task's thread).
  public final class EpochCounter: @unchecked Sendable { var value = 0 }

  public init(
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
  public func startDevices() throws -> [String] {
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
  public func withBackend<T>(_ body: (Backend) throws -> T) throws -> T {
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

  /// The task's data set, loaded once for every task of it: the one the lease offers
  /// (served by the coordinator, cached by hash), else the one its data source names.
  public func data(_ source: DataSource, offer: DataOffer?) throws -> ExperimentData {
    lock.lock()
    defer { lock.unlock() }
    let key = try offer.map { "served " + $0.hash } ?? String(decoding: try JSONEncoder().encode(source), as: UTF8.self)
    if cache?.key != key {
      let started = Date()
      let origin: String
      if let offer, let dataCache {
        cache = (key, try dataCache.load(offer))
        origin = "served data set \(offer.hash.prefix(12))…"
      } else {
        cache = (key, try ExperimentData.load(source))
        origin = "experiment's paths"
      }
      log(String(format: "data ready in %.2f s (%d training images, from the %@)", Date().timeIntervalSince(started), cache!.data.training.count, origin))
    }
    return cache!.data
  }

  public func run(_ task: TaskAssignment, progress: @escaping (ProgressReport) -> Void) throws -> TaskOutput {
    // Training is deterministic: a task that diverged diverges again on any attempt.
    do { return try runTask(task, progress: progress) } catch let error as TrainingError {
      if case .diverged = error { throw PermanentTaskFailure("\(error)") }
      throw error
    }
  }

  private func runTask(_ task: TaskAssignment, progress: @escaping (ProgressReport) -> Void) throws -> TaskOutput {
    let specification = try TaskSpecification.decode(task.settings, task: task.task)
    let data = try data(specification.data, offer: task.data)
    let training = data.training
    // The coordinator resolved the configuration for the images it loaded: a worker whose
    // copy of the data differs says so rather than train a model of another shape.
    let model = specification.configuration.model
    guard [model.inputChannels, model.classes, model.imageHeight, model.imageWidth] == [training.channels, training.classes, training.height, training.width] else {
      throw ExperimentError(
        file: specification.data.file, line: nil,
        "task \(task.task): the coordinator's images are \(model.imageHeight)×\(model.imageWidth)×\(model.inputChannels) in \(model.classes) classes, "
          + "this worker's \(training.height)×\(training.width)×\(training.channels) in \(training.classes)")
    }
    let fold: Int
    switch specification.role {
    case .refit:
      // A refit: the variant on the whole training set; test logits only.
      return try train(task, specification, data: TrainingData(training: training, test: data.test), progress: progress)
    case .student:
      return try runStudent(task, specification, data: data, progress: progress)
    case .member(let member): fold = member
    case .trial(let trial): fold = trial
    }
    guard fold >= 0 && fold < data.folds.count else {
      throw ExperimentError(file: specification.data.file, line: nil, "task \(task.task): fold \(fold) of \(data.folds.count)")
    }
    let split = data.folds.split(fold)
    var foldTraining = training.subset(split.training)
    let test = specification.role.isTrial ? nil : data.test
    // A Noisy Student round: the pseudo-labelled test images join the training fold.
    if let pseudo = task.tensors.first(where: { $0.name == "pseudo_labels" }), let test = data.test {
      guard pseudo.shape.count == 2, pseudo.shape[1] == 2,
        pseudo.values.enumerated().allSatisfy({ $0.offset % 2 == 1 ? Int($0.element) < training.classes : Int($0.element) < test.count })
      else { throw ExperimentError(file: specification.data.file, line: nil, "task \(task.task): pseudo-labels out of range") }
      let rows = (0..<pseudo.shape[0]).map { (index: Int(pseudo.values[2 * $0]), label: Int32(pseudo.values[2 * $0 + 1])) }
      let images = test.subset(rows.map(\.index))
      foldTraining = foldTraining.appending(ImageDataset(
        pixels: images.pixels, labels: rows.map(\.label), height: test.height, width: test.width, channels: test.channels,
        classes: training.classes))
    }
    return try train(
      task, specification, data: TrainingData(training: foldTraining, validation: training.subset(split.validation), test: test),
      progress: progress)
  }

  /// Trains, reporting every epoch, and returns the task's outputs: the validation logits
  /// ("oof", when there is a validation set), the test logits ("test") and the final
  /// weights ("checkpoint", those that made the logits; loadable by torchvision).
  public func train(
    _ task: TaskAssignment, _ specification: TaskSpecification, data: TrainingData, progress: @escaping (ProgressReport) -> Void
  ) throws -> TaskOutput {
    try withBackend { backend in
      if devices.count > 1 { log("\(task.task) attempt \(task.attempt) trains on \(backend.name)") }
      return try train(task, specification, data: data, backend: backend, progress: progress)
    }
  }

  private func train(
    _ task: TaskAssignment, _ specification: TaskSpecification, data: TrainingData, backend: Backend,
    progress: @escaping (ProgressReport) -> Void
  ) throws -> TaskOutput {
    let configuration = specification.configuration
    let trainer = try Trainer(
      configuration: configuration, data: data, backend: backend, threads: threads, outputFolder: nil,
      reporter: ProgressReporter(style: .silent, totalEpochs: configuration.epochs))
    // A search trial under successive halving waits a moment at each rung for the
    // coordinator's verdict on the report it just sent (a stop comes back in milliseconds;
    // silence means go on), so that a hopeless trial ends at the rung, not an epoch later.
    let rungs = Set(specification.rungs)
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
    let precision = specification.logitsPrecision
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
