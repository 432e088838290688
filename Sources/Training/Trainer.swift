import Data
import Files
import Foundation
import NN
import Tensor

/// The data a training run sees. Normalisation statistics come from `training`.
public struct TrainingData {
  public var training: ImageDataset
  public var validation: ImageDataset?
  public var test: ImageDataset?
  /// A target distribution per training example (row-major [training.count, classes],
  /// rows summing to 1), trained towards instead of the labels: a teacher's probabilities
  /// (distillation). nil: the labels.
  public var targets: [Float]?

  public init(training: ImageDataset, validation: ImageDataset? = nil, test: ImageDataset? = nil, targets: [Float]? = nil) {
    self.training = training
    self.validation = validation
    self.test = test
    self.targets = targets
  }
}

/// What a finished run produced.
public struct TrainingResult {
  public var progress: TrainingProgress
  public var validationLogits: [Float]? = nil
  public var testLogits: [Float]? = nil
  public var validation: ClassificationMetrics? = nil
  public var test: ClassificationMetrics? = nil
}

/// Trains one MobileNetV2: seeded shuffling, mini-batches, evaluation every epoch, early
/// stopping with best-epoch restore, a resumable state after every epoch, and the
/// outputs of a run folder (model.safetensors, *.logits.npy, metrics.json).
public final class Trainer {
  public let configuration: TrainingConfiguration
  public let data: TrainingData
  public let model: MobileNetV2
  public let backend: Backend
  /// Where outputs go (nil: keep everything in memory).
  public let outputFolder: String?
  public let reporter: ProgressReporter
  let optimizer: Optimizer
  /// The weight average, when the configuration keeps one.
  public let average: ExponentialMovingAverage?
  let assembler: BatchAssembler
  /// The model's input, the backend's tensor, and the host tensor the batch is assembled
  /// in (the same tensor on the CPU backend).
  let modelImages: Tensor
  let images: Tensor
  /// The batch's labels as assembled, and as the loss reads them.
  let labels: UnsafeMutablePointer<Int32>
  let labelTensor: Tensor
  let classWeights: Tensor?
  let logitAdjustment: Tensor?
  let logitGradient: Tensor
  /// The step's loss, on the backend, and read back.
  let lossValue: Tensor
  var lossRead: Float = 0
  /// The epoch's step losses, kept on the backend until the progress line (at most every
  /// `lossReadInterval` seconds) or the epoch's end reads them: a device runs ahead of the
  /// host instead of waiting for it at every step.
  var epochLosses: Tensor
  static let lossReadInterval = 0.5
  let clipper: GradientClipper?
  /// The clipper of a frozen-body step: the classifier's gradients are all there are.
  let classifierClipper: GradientClipper?
  /// Mixing scratch: the batch's own images (host), and the mixed labels or distillation
  /// targets as soft targets (the backend's tensor and its host staging).
  let partnerImages: Tensor?
  let softTargetTensor: Tensor?
  let softTargets: Tensor?
  public let description: ModelCheckpoint.Description

  /// Called after every epoch with its record (a worker turns it into a progress report).
  public var onEpoch: ((EpochRecord) -> Void)?
  /// Asked after every epoch (after `onEpoch`): true ends the run there, as early stopping
  /// does, with that epoch's weights and logits (a search's trial its coordinator stopped).
  public var shouldStop: (() -> Bool)?
  /// Where `run` writes a JSON line per step (`StepLog`: learning rate, loss, gradient
  /// norm). Set it before the first step. nil: no step log.
  public var stepLogPath: String?
  /// Keep the evaluation weights (the average's, where there is one) after every this many
  /// epochs as epoch-N.safetensors in the output folder: snapshots to diagnose a run from,
  /// or to ensemble. nil: only the run's own checkpoints.
  public var snapshotInterval: Int?
  /// Measures each step's gradient norm for the step log where no clipper does (and the
  /// classifier's, while the body is frozen).
  private var normMeter: GradientClipper?
  private var classifierNormMeter: GradientClipper?
  /// Whether every parameter has optimizer state (the body frozen no longer, or never).
  private var allStateAllocated = false
  /// The epoch's gradient norms, kept on the backend like `epochLosses` (a step log only).
  private var epochNorms: Tensor?
  /// Passes over a data set's images in evaluation mode so far (each epoch's, the final).
  public private(set) var evaluationPasses = 0
  /// The last epoch's evaluation, kept for `finish`: when the final weights are that
  /// epoch's evaluation weights and no test-time augmentation applies, the final logits are
  /// these, bit for bit, and evaluating again would only repeat them.
  private var lastEpochEvaluation: EpochEvaluation?
  struct EpochEvaluation {
    var epoch: Int
    var validation: (logits: [Float], metrics: ClassificationMetrics)?
    var test: (logits: [Float], metrics: ClassificationMetrics)?
  }

  /// Whether batches are assembled on a background thread while the previous one
  /// trains. It changes the speed, never the result.
  public let prefetch: Bool
  let prefetcher: BatchPrefetcher?
  /// The data sets the backend holds in its memory, when it assembles the batches itself
  /// (a GPU: no batch of floats crosses the bus); nil: the host assembles them.
  let heldImages: HeldImages?
  /// Whether the backend holds the images and assembles the batches itself.
  public var holdsImages: Bool { heldImages != nil }
  let recorder: StepRecorder
  /// Training steps replayed from a recording so far (a CUDA graph; 0 on the CPU).
  public var replayedSteps: Int { recorder.replays }

  public init(
    configuration: TrainingConfiguration, data: TrainingData, backend: Backend, threads: Int,
    outputFolder: String?, reporter: ProgressReporter? = nil, prefetch: Bool = true, prefetchThreads: Int = 1,
    normalization: (mean: [Float], std: [Float])? = nil, holdImages: Bool = true, recordSteps: Bool = true
  ) throws {
    try configuration.validate()
    let model = configuration.model
    for (role, dataset) in [("training", data.training), ("validation", data.validation), ("test", data.test)] {
      guard let dataset else { continue }
      guard dataset.height == model.imageHeight, dataset.width == model.imageWidth, dataset.channels == model.inputChannels else {
        throw TrainingError.invalidConfiguration(
          "\(role) images are \(dataset.height)×\(dataset.width)×\(dataset.channels), the model takes \(model.imageHeight)×\(model.imageWidth)×\(model.inputChannels)")
      }
      guard dataset.classes <= model.classes else {
        throw TrainingError.invalidConfiguration("\(role) data has \(dataset.classes) classes, the model \(model.classes)")
      }
    }
    guard data.training.count >= 2 else { throw TrainingError.invalidConfiguration("the training set needs at least 2 examples") }
    do { try configuration.selectionMetric.check(classes: model.classes) } catch let error as MetricError {
      throw TrainingError.invalidConfiguration("select_by: \(error)")
    }
    if let targets = data.targets {
      guard targets.count == data.training.count * model.classes else {
        throw TrainingError.invalidConfiguration("\(targets.count / max(model.classes, 1)) target rows for \(data.training.count) training examples")
      }
      guard !configuration.mixing.isActive else {
        throw TrainingError.invalidConfiguration("mixup/CutMix mix labels, and the training data brings its own targets (distillation): use one or the other")
      }
    }
    self.configuration = configuration
    self.data = data
    self.backend = backend
    self.outputFolder = outputFolder
    self.reporter = reporter ?? ProgressReporter(totalEpochs: configuration.epochs)
    let network = try MobileNetV2(model, capacity: configuration.batchSize, backend: backend)
    network.initialize(seed: configuration.seed)
    self.model = network
    let scales = configuration.learningRateScales(layers: network.layers)
    // A frozen first epoch allocates the classifier's state only; the body's comes when it trains.
    let trainedFirst = configuration.freezesBody(inEpoch: 0) ? network.classifierParameters : network.parameters
    switch configuration.optimizer {
    case .sgd:
      optimizer = SGD(
        parameters: network.parameters, momentum: configuration.momentum, nesterov: configuration.nesterov,
        weightDecay: configuration.weightDecay, learningRateScales: scales, trainedFirst: trainedFirst, backend: backend)
    case .adamw:
      optimizer = AdamW(
        parameters: network.parameters, weightDecay: configuration.weightDecay, learningRateScales: scales,
        trainedFirst: trainedFirst, backend: backend)
    }
    clipper = configuration.gradientClipNorm.map { GradientClipper(network.parameters, maximumNorm: $0, backend: backend) }
    classifierClipper = configuration.freezeBodyEpochs == nil ? nil : configuration.gradientClipNorm.map {
      GradientClipper(network.classifierParameters, maximumNorm: $0, backend: backend)
    }
    average = configuration.emaDecay.map { ExponentialMovingAverage(model: network, decay: $0) }
    // The training images' channel statistics or ImageNet's, or a checkpoint's (predicting
    // with a model trained elsewhere).
    let statistics = try normalization
      ?? configuration.normalization.statistics(channels: model.inputChannels) { data.training.channelStatistics() }
    description = ModelCheckpoint.Description(configuration: model, mean: statistics.mean, std: statistics.std)
    assembler = BatchAssembler(mean: statistics.mean, std: statistics.std, threads: threads)
    modelImages = backend.makeTensor(shape: [configuration.batchSize, model.imageHeight, model.imageWidth, model.inputChannels])
    images = backend.staging(for: modelImages)
    labels = .allocate(capacity: configuration.batchSize)
    labelTensor = backend.makeTensor(shape: [configuration.batchSize])
    let counts = data.training.classCounts + [Int](repeating: 0, count: max(0, model.classes - data.training.classes))
    classWeights = configuration.classWeighting.weights(counts: counts).map { backend.makeTensor(shape: [$0.count], values: $0) }
    if configuration.logitAdjustment > 0 {
      // τ·log π_c; an absent class gets the prior of a single example.
      let total = Double(counts.reduce(0, +))
      logitAdjustment = backend.makeTensor(
        shape: [model.classes], values: counts.map { Float(configuration.logitAdjustment * log(Double(max($0, 1)) / total)) })
    } else {
      logitAdjustment = nil
    }
    logitGradient = backend.makeTensor(shape: [configuration.batchSize, model.classes])
    lossValue = backend.makeTensor(shape: [1])
    epochLosses = backend.makeTensor(shape: [max(Self.batches(configuration: configuration, data: data, epoch: 0).count, 1)])
    heldImages = holdImages ? HeldImages(data: data, configuration: configuration, assembler: assembler, backend: backend) : nil
    recorder = StepRecorder(backend: backend, records: recordSteps)
    // Batches the backend assembles need no host thread to prepare them.
    self.prefetch = prefetch && heldImages == nil
    prefetcher = prefetch && heldImages == nil
      ? BatchPrefetcher(
        imageCount: images.capacity, batchSize: configuration.batchSize,
        assembler: BatchAssembler(mean: statistics.mean, std: statistics.std, threads: max(prefetchThreads, 1)))
      : nil
    partnerImages = configuration.mixing.isActive ? Tensor(shape: [images.capacity]) : nil
    softTargetTensor = configuration.mixing.isActive || data.targets != nil ? backend.makeTensor(shape: [configuration.batchSize, model.classes]) : nil
    softTargets = softTargetTensor.map { backend.staging(for: $0) }
    try checkBackend("building MobileNetV2 (width \(model.width), \(model.imageHeight)×\(model.imageWidth)×\(model.inputChannels)) and its optimizer")
  }

  /// The backend's first failure, if any, as a training error that says what the trainer
  /// was doing (and, out of memory, which setting to lower).
  func checkBackend(_ doing: @autoclosure () -> String) throws {
    do {
      try backend.check()
    } catch let failure as DeviceFailure {
      throw TrainingError.device(failure, while: doing(), batchSize: configuration.batchSize)
    }
  }

  deinit { labels.deallocate() }

  /// Starts from another model's weights (WeightTransfer: a checkpoint of another class
  /// count or input channels, or torchvision's state dict) and says what it took; the
  /// weight average, if any, restarts from them too. `run` does it for the configuration's
  /// `initialization` unless it resumes.
  @discardableResult
  public func initializeWeights(from path: String, newClassifier: Bool = false) throws -> WeightTransfer.Report {
    let report = try WeightTransfer.load(path, into: model, newClassifier: newClassifier)
    average?.reset()
    initializationReport = report
    reporter.message("initialised from \(path): \(report.summary)")
    return report
  }

  /// What the last `initializeWeights` took, adapted, left new and dropped.
  public private(set) var initializationReport: WeightTransfer.Report?

  /// The parameters that train in (0-based) `epoch`: the classifier's while the body is
  /// frozen, else all.
  func trainedParameters(inEpoch epoch: Int) -> [Parameter] {
    configuration.freezesBody(inEpoch: epoch) ? model.classifierParameters : model.parameters
  }

  var statePath: String? { outputFolder.map { $0 + "/state.safetensors" } }
  var bestPath: String? { outputFolder.map { $0 + "/best.safetensors" } }

  /// Mini-batches of an epoch: a seeded permutation cut as the configuration's `batching`
  /// says. By default into as few batches of at most the batch size as hold it, of sizes
  /// that differ by one at most. A ragged last batch (11,909 examples in batches of 128
  /// leave 5) gives batch normalisation statistics of a handful of examples and one wild
  /// step an epoch: at the reference recipe's learning rate it ruins training on a 4/5
  /// fold of FMNIST-LT-100 in both engines (3 seeds: Quorum 0.47, PyTorch 0.42 test
  /// accuracy, against 0.79 and 0.78 with even batches; docs/benchmarks.md). `ragged` cuts
  /// as PyTorch's DataLoader does. A batch of one is dropped (batch normalisation needs
  /// two; PyTorch refuses to train on one).
  public func batches(epoch: Int) -> [ArraySlice<Int>] { Self.batches(configuration: configuration, data: data, epoch: epoch) }

  static func batches(configuration: TrainingConfiguration, data: TrainingData, epoch: Int) -> [ArraySlice<Int>] {
    let order = configuration.sampling.order(
      labels: data.training.labels, classes: data.training.classes, seed: configuration.seed, epoch: epoch,
      growTo: configuration.growClassesTo)
    let count = (order.count + configuration.batchSize - 1) / configuration.batchSize
    guard count > 0 else { return [] }
    let sizes: [Int]
    switch configuration.batching {
    case .even:
      let (base, extra) = order.count.quotientAndRemainder(dividingBy: count)
      sizes = (0..<count).map { base + ($0 < extra ? 1 : 0) }
    case .ragged:
      sizes = (0..<count).map { min(configuration.batchSize, order.count - $0 * configuration.batchSize) }
    }
    var batches: [ArraySlice<Int>] = []
    var start = 0
    for size in sizes {
      if size >= 2 { batches.append(order[start..<(start + size)]) }
      start += size
    }
    return batches
  }

  /// Runs the remaining epochs. With `resume`, continues from the output folder's state.
  /// With `stoppingAfter`, returns (with progress only) once that many epochs are done,
  /// as an interrupted run would: the state on disk is what `resume` continues from.
  @discardableResult
  public func run(resume: Bool = false, stoppingAfter interruption: Int? = nil) throws -> TrainingResult {
    var progress = TrainingProgress()
    if resume, let statePath, FileManager.default.fileExists(atPath: statePath) {
      progress = try TrainingStateFile.load(
        from: statePath, configuration: configuration, model: model, optimizer: optimizer, average: average,
        trainedParameters: trainedParameters(inEpoch:))
      reporter.message("resuming after epoch \(progress.epoch) of \(configuration.epochs) from \(statePath)")
    } else if let initialization = configuration.initialization {
      try initializeWeights(from: initialization.path, newClassifier: initialization.newClassifier)
    }
    let stepsPerEpoch = batches(epoch: 0).count
    let totalSteps = stepsPerEpoch * configuration.epochs
    let stepLog = try stepLogPath.map { try StepLog(path: $0, keepingEpochs: resume ? progress.epoch : nil) }
    if stepLog != nil && clipper == nil && normMeter == nil {
      precondition(recorder.replays == 0, "set stepLogPath before the first step: the recorded step has no norm to log")
      normMeter = .measuring(model.parameters, backend: backend)
    }
    let runStart = Date()
    let stepsAtStart = progress.step
    while progress.epoch < configuration.epochs && !progress.stoppedEarly {
      let epoch = progress.epoch
      let epochStart = Date()
      var lossSum = 0.0
      var seen = 0
      var learningRate = 0.0
      let epochBatches = batches(epoch: epoch)
      prefetcher?.start(
        data.training, batches: epochBatches, augmentation: configuration.augmentation, seed: configuration.seed, epoch: epoch)
      defer { prefetcher?.finish() }
      if epochLosses.capacity < epochBatches.count { epochLosses = backend.makeTensor(shape: [epochBatches.count]) }
      if stepLog != nil && (epochNorms?.capacity ?? 0) < epochBatches.count {
        epochNorms = backend.makeTensor(shape: [epochBatches.count])
      }
      let firstStep = progress.step
      var stepScalars: [(learningRate: Double, momentum: Double?)] = []
      var lastRead = Date()
      var read = 0  // step losses read back so far this epoch
      for (index, batch) in epochBatches.enumerated() {
        learningRate = configuration.schedule.learningRate(
          peak: configuration.learningRate, step: progress.step, totalSteps: totalSteps,
          stepsPerEpoch: stepsPerEpoch, plateauFactor: progress.plateau.factor)
        let momentum = configuration.momentumCycle.flatMap {
          configuration.schedule.cycledMomentum(step: progress.step, totalSteps: totalSteps, cycle: $0).map(Float.init)
        }
        if let prefetcher {
          let slot = prefetcher.batch(index)
          enqueueStep(
            images: slot.images, labels: slot.labels, indices: batch, epoch: epoch, step: progress.step,
            learningRate: Float(learningRate), momentum: momentum)
          prefetcher.release(index)
        } else {
          assembleAndEnqueueStep(batch, epoch: epoch, step: progress.step, learningRate: Float(learningRate), momentum: momentum)
        }
        backend.copy(lossValue, offset: 0, to: epochLosses, offset: index, count: 1)
        if stepLog != nil, let epochNorms, let meter = stepNormMeter(epoch: epoch) {
          backend.copy(meter.normValue, offset: 0, to: epochNorms, offset: index, count: 1)
          let sgdMomentum = configuration.optimizer == .sgd ? Double(momentum ?? configuration.momentum) : nil
          stepScalars.append((learningRate, sgdMomentum))
        }
        progress.step += 1
        try checkBackend("training epoch \(epoch + 1), step \(index + 1)")
        guard index == epochBatches.count - 1 || Date().timeIntervalSince(lastRead) >= Self.lossReadInterval else { continue }
        // A read-back point: the losses since the last, the divergence check, the progress line.
        let losses = backend.download(epochLosses, count: index + 1 - read, offset: read)
        // The step log first: the steps up to a non-finite loss are what diagnoses it.
        if let stepLog, let epochNorms {
          let norms = backend.download(epochNorms, count: losses.count, offset: read)
          try stepLog.write(losses.indices.map { offset in
            let step = read + offset
            return StepLog.Entry(
              epoch: epoch + 1, step: firstStep + step + 1, batch: epochBatches[step].count,
              learningRate: stepScalars[step].learningRate, momentum: stepScalars[step].momentum, loss: Double(losses[offset]),
              gradientNorm: Double(norms[offset]))
          })
        }
        for (offset, loss) in losses.enumerated() {
          let step = read + offset
          guard loss.isFinite else {
            throw TrainingError.diverged("the loss became \(loss) at epoch \(epoch + 1), step \(step + 1): lower the learning rate or clip gradients (--clip-norm)")
          }
          lossSum += Double(loss) * Double(epochBatches[step].count)
          seen += epochBatches[step].count
        }
        read = index + 1
        lastRead = Date()
        let elapsed = Date().timeIntervalSince(epochStart)
        let perStep = Date().timeIntervalSince(runStart) / Double(progress.step - stepsAtStart)
        reporter.step(
          epoch: epoch, step: index + 1, steps: epochBatches.count, imagesPerSecond: Double(seen) / elapsed,
          loss: lossSum / Double(seen), epochETA: perStep * Double(epochBatches.count - index - 1),
          runETA: perStep * Double(totalSteps - progress.step))
      }
      let seconds = Date().timeIntervalSince(epochStart)
      var record = EpochRecord(
        epoch: epoch + 1, trainingLoss: lossSum / Double(max(seen, 1)), learningRate: learningRate,
        imagesPerSecond: Double(seen) / seconds, seconds: seconds)
      var evaluation = EpochEvaluation(epoch: epoch + 1)
      let testDue = configuration.testEvaluationInterval.map { $0 > 0 && (epoch + 1) % $0 == 0 } ?? true
      try withEvaluationWeights {
        evaluation.validation = data.validation.map { evaluate($0) }
        evaluation.test = data.test.flatMap { $0.isLabelled && testDue ? evaluate($0) : nil }
      }
      record.validation = evaluation.validation?.metrics
      record.test = evaluation.test?.metrics
      lastEpochEvaluation = evaluation
      try checkBackend("evaluating epoch \(epoch + 1)")
      progress.epoch += 1
      progress.history.append(record)
      try selectAndSchedule(record, progress: &progress)
      reporter.epochEnded(Self.summary(record, of: configuration.epochs, best: progress.bestEpoch == epoch + 1))
      onEpoch?(record)
      if progress.epoch < configuration.epochs, shouldStop?() == true {
        progress.stoppedEarly = true
        reporter.message("stopped after epoch \(progress.epoch) of \(configuration.epochs), as asked")
      }
      if let statePath {
        try TrainingStateFile.save(
          to: statePath, configuration: configuration, progress: progress, model: model, optimizer: optimizer, average: average)
      }
      if let snapshotInterval, let outputFolder, progress.epoch % snapshotInterval == 0 {
        let path = outputFolder + "/epoch-\(progress.epoch).safetensors"
        try withEvaluationWeights { try ModelCheckpoint.save(model, description: description, to: path) }
      }
      if let interruption, progress.epoch >= interruption, progress.epoch < configuration.epochs {
        return TrainingResult(progress: progress)
      }
    }
    return try finish(progress)
  }

  /// Forward, loss, backward, clipping, update, average: one optimizer step on the
  /// training examples at `batch`. Returns the batch's loss (read back: the host waits for
  /// the step). Allocates nothing. `momentum`: this step's SGD momentum where it is cycled
  /// (nil: the configuration's).
  public func trainStep(_ batch: ArraySlice<Int>, epoch: Int, step: Int, learningRate: Float, momentum: Float? = nil) -> Double {
    assembleAndEnqueueStep(batch, epoch: epoch, step: step, learningRate: learningRate, momentum: momentum)
    withUnsafeMutablePointer(to: &lossRead) { backend.download(lossValue, offset: 0, into: UnsafeMutableBufferPointer(start: $0, count: 1)) }
    return Double(lossRead)
  }

  /// Assembles the batch at `batch` (on the backend from its held images, as part of the
  /// step, else on the host), then `enqueueStep`.
  func assembleAndEnqueueStep(_ batch: ArraySlice<Int>, epoch: Int, step: Int, learningRate: Float, momentum: Float?) {
    if let heldImages {
      heldImages.stagePlan(
        data.training, indices: batch, augmentation: configuration.augmentation, seed: configuration.seed, epoch: epoch,
        assembler: assembler, labels: labels)
      enqueueStep(images: nil, labels: labels, indices: batch, epoch: epoch, step: step, learningRate: learningRate, momentum: momentum)
      return
    }
    assembler.assemble(
      data.training, indices: batch, augmentation: configuration.augmentation, seed: configuration.seed,
      epoch: epoch, images: images, labels: labels)
    enqueueStep(images: images, labels: labels, indices: batch, epoch: epoch, step: step, learningRate: learningRate, momentum: momentum)
  }

  /// One optimizer step on an assembled batch (the training examples at `indices`), called
  /// on the backend without waiting for it: the loss lands in `lossValue`. `images` is the
  /// host's batch, or nil where the backend assembles it from its held images (the plan
  /// staged). First what the host prepares and sends (the batch, the labels, the step's
  /// scalars), then the step itself, recorded once per shape and replayed (`StepRecorder`).
  func enqueueStep(
    images: Tensor?, labels: UnsafeMutablePointer<Int32>, indices: ArraySlice<Int>, epoch: Int, step: Int, learningRate: Float,
    momentum: Float?
  ) {
    let batch = 0..<indices.count
    var mixed = false
    if let targets = data.targets, let softTargets {
      // The examples' own target rows (distillation).
      let classes = configuration.model.classes
      targets.withUnsafeBufferPointer { rows in
        for (slot, example) in indices.enumerated() {
          (softTargets.data + slot * classes).update(from: rows.baseAddress! + example * classes, count: classes)
        }
      }
      mixed = true
    } else if let partnerImages, let softTargets, let images {
      let geometry = configuration.model
      mixed = configuration.mixing.apply(
        images: images, partner: partnerImages, labels: labels, batch: batch.count, height: geometry.imageHeight,
        width: geometry.imageWidth, channels: geometry.inputChannels, classes: geometry.classes, targets: softTargets,
        seed: configuration.seed, step: step) != nil
    }
    let classes = configuration.model.classes
    // The assembled batch to the backend (nothing to move on the CPU but the labels).
    if let images { backend.commit(staging: images, to: modelImages, count: batch.count * modelImages.capacity / configuration.batchSize) }
    backend.uploadLabels(UnsafeBufferPointer(start: labels, count: batch.count), to: labelTensor)
    if mixed, let softTargets, let softTargetTensor {
      backend.commit(staging: softTargets, to: softTargetTensor, count: batch.count * classes)
    }
    optimizer.prepare(learningRate: learningRate, momentum: momentum)
    model.prepareTrainingStep(UInt64(step))
    // Deferred re-weighting: the class weights join at their epoch (epochs are 1-based there).
    let weighted = configuration.reweightFromEpoch.map { epoch + 1 >= $0 } ?? true
    let assemblesOnBackend = images == nil
    let frozenBody = configuration.freezesBody(inEpoch: epoch)
    let trained = trainedParameters(inEpoch: epoch)
    let meter = stepNormMeter(epoch: epoch)
    // The body's state at the first step that trains it: an allocation, outside the
    // recording; once every parameter has state there is nothing left to allocate.
    if !allStateAllocated {
      optimizer.allocateState(for: trained)
      allStateAllocated = !frozenBody
    }
    recorder.run(StepRecorder.Shape(batch: batch.count, weighted: weighted, softTargets: mixed, frozenBody: frozenBody)) {
      if assemblesOnBackend, let heldImages {
        heldImages.assembleStaged(data.training, held: heldImages.training, batch: batch.count, images: modelImages)
      }
      let logits = model.forward(modelImages, batch: batch.count, training: true, frozenBody: frozenBody, seed: configuration.seed)
      let options = CrossEntropyOptions(
        labelSmoothing: configuration.labelSmoothing, classWeights: weighted ? classWeights : nil,
        logitAdjustment: logitAdjustment, focalGamma: configuration.focalGamma, softTargets: mixed ? softTargetTensor : nil)
      backend.softmaxCrossEntropy(
        logits: logits, labels: labelTensor, batch: batch.count, classes: classes, options: options, logitGradient: logitGradient,
        loss: lossValue)
      if frozenBody {
        model.backwardClassifier(logitGradient: logitGradient, batch: batch.count)
      } else {
        model.backward(logitGradient: logitGradient, batch: batch.count)
      }
      meter?.clip()
      optimizer.update(trained)
      average?.update()
    }
  }

  /// What clips (or only measures, for the step log) a step's gradients in `epoch`: over
  /// the classifier's alone while the body is frozen.
  func stepNormMeter(epoch: Int) -> GradientClipper? {
    if configuration.freezesBody(inEpoch: epoch) {
      if let classifierClipper { return classifierClipper }
      if normMeter != nil && classifierNormMeter == nil { classifierNormMeter = .measuring(model.classifierParameters, backend: backend) }
      return classifierNormMeter
    }
    return clipper ?? normMeter
  }

  /// Early stopping, best-epoch checkpoint and reduce-on-plateau from a finished epoch.
  func selectAndSchedule(_ record: EpochRecord, progress: inout TrainingProgress) throws {
    guard let validation = record.validation else { return }
    let score = validation.score(configuration.selectionMetric)
    if case .reduceOnPlateau(let factor, let patience) = configuration.schedule {
      progress.plateau.record(score, factor: factor, patience: patience)
    }
    if progress.bestScore.map({ score > $0 }) ?? true {
      progress.bestScore = score
      progress.bestEpoch = record.epoch
      progress.epochsWithoutImprovement = 0
      if let bestPath { try withEvaluationWeights { try ModelCheckpoint.save(model, description: description, to: bestPath) } }
    } else {
      progress.epochsWithoutImprovement += 1
      if let patience = configuration.earlyStoppingPatience, progress.epochsWithoutImprovement >= patience {
        progress.stoppedEarly = true
        reporter.message("early stopping: no \(configuration.selectionMetric.spelling) improvement for \(patience) epochs")
      }
    }
  }

  /// Puts the final weights in place (best epoch or EMA), writes the run folder's
  /// outputs and returns the logits and scores.
  func finish(_ progress: TrainingProgress) throws -> TrainingResult {
    var restored = false
    if configuration.restoreBest, data.validation != nil, let bestPath, let bestEpoch = progress.bestEpoch,
      bestEpoch != progress.epoch
    {
      try ModelCheckpoint.load(bestPath, into: model)
      restored = true
      reporter.message("restored the weights of epoch \(bestEpoch) (best validation \(configuration.selectionMetric.spelling))")
    } else {
      // (The weights the epochs were evaluated with: the average's, where there is one.)
      average?.copyToModel()
    }
    let augmentation = configuration.testTimeAugmentation
    // The last epoch's evaluation is the final one when its weights are the final weights
    // (nothing restored, this process ran that epoch) and no augmentation changes it.
    let reusable = restored || augmentation.transforms.count > 1 ? nil : lastEpochEvaluation.flatMap { $0.epoch == progress.epoch ? $0 : nil }
    let validation = data.validation.map { reusable?.validation ?? evaluate($0, testTimeAugmentation: augmentation) }
    let test = data.test.map { reusable?.test ?? evaluate($0, testTimeAugmentation: augmentation) }
    try checkBackend("computing the final logits")
    let result = TrainingResult(
      progress: progress, validationLogits: validation?.logits, testLogits: test?.logits,
      validation: validation?.metrics, test: data.test?.isLabelled == true ? test?.metrics : nil)
    if let outputFolder {
      let classes = configuration.model.classes
      try ModelCheckpoint.save(model, description: description, to: outputFolder + "/model.safetensors")
      if let validation {
        try NumPy.write(validation.logits, shape: [validation.logits.count / classes, classes], to: outputFolder + "/validation.logits.npy")
      }
      if let test {
        try NumPy.write(test.logits, shape: [test.logits.count / classes, classes], to: outputFolder + "/test.logits.npy")
      }
      // The ids of the rows of the logits, one per line, when the data have ids.
      for (name, dataset) in [("validation", data.validation), ("test", data.test)] {
        guard let ids = dataset?.ids else { continue }
        try FileBytes.writeAtomically(Array((ids.joined(separator: "\n") + "\n").utf8), to: outputFolder + "/\(name).ids.txt")
      }
      try writeMetrics(result, to: outputFolder + "/metrics.json")
    }
    return result
  }

  /// Runs `body` with the weights that are evaluated: the EMA's when there is one.
  func withEvaluationWeights(_ body: () throws -> Void) throws {
    if let average { try average.withAveragedWeights(body) } else { try body() }
  }

  /// Logits [n, classes] of the current model in evaluation mode, and their scores.
  /// With test-time augmentation, the softmax is averaged over the transforms and the
  /// logits returned are the log of that average. The run's own data sets, where the
  /// backend holds them, are assembled there.
  public func evaluate(_ dataset: ImageDataset, testTimeAugmentation: TestTimeAugmentation = .none) -> (logits: [Float], metrics: ClassificationMetrics) {
    evaluationPasses += 1
    let held = heldImages?.held(dataset, of: data)
    let classes = configuration.model.classes
    let logits = InferenceLoop.logits(
      count: dataset.count, classes: classes, batchSize: model.capacity, transforms: testTimeAugmentation.transforms, backend: backend
    ) { batch, transform in
      if let heldImages, let held {
        heldImages.assemble(
          dataset, held: held, indices: batch, augmentation: .none, seed: 0, epoch: 0, assembler: assembler, labels: labels,
          images: modelImages, fixed: transform)
      } else {
        assembler.assemble(dataset, indices: batch, augmentation: .none, seed: 0, epoch: 0, images: images, labels: labels, fixed: transform)
        backend.commit(staging: images, to: modelImages, count: batch.count * modelImages.capacity / configuration.batchSize)
      }
      return model.forward(modelImages, batch: batch.count, training: false)
    }
    let metrics = logits.withUnsafeBufferPointer {
      ClassificationMetrics.compute(logits: $0.baseAddress!, labels: dataset.labels, classes: classes)
    }
    return (logits, metrics)
  }

  func writeMetrics(_ result: TrainingResult, to path: String) throws {
    struct Report: Encodable {
      var configuration: TrainingConfiguration
      var trainingExamples: Int
      var trainingClassCounts: [Int]
      var parameters: Int
      var backend: String
      var bestEpoch: Int?
      var stoppedEarly: Bool
      var history: [EpochRecord]
      var validation: ClassificationMetrics?
      var test: ClassificationMetrics?
      enum CodingKeys: String, CodingKey {
        case configuration, trainingExamples = "training_examples", trainingClassCounts = "training_class_counts"
        case parameters, backend, bestEpoch = "best_epoch", stoppedEarly = "stopped_early", history, validation, test
      }
    }
    let report = Report(
      configuration: configuration, trainingExamples: data.training.count, trainingClassCounts: data.training.classCounts,
      parameters: model.parameterCount, backend: backend.name, bestEpoch: result.progress.bestEpoch,
      stoppedEarly: result.progress.stoppedEarly, history: result.progress.history, validation: result.validation,
      test: result.test)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try FileBytes.writeAtomically([UInt8](try encoder.encode(report)), to: path)
  }

  static func summary(_ record: EpochRecord, of epochs: Int, best: Bool) -> String {
    var line = String(
      format: "epoch %d/%d  loss %.4f  lr %.4g  %.0f img/s  %.1f s", record.epoch, epochs, record.trainingLoss,
      record.learningRate, record.imagesPerSecond, record.seconds)
    for (name, metrics) in [("val", record.validation), ("test", record.test)] {
      guard let metrics else { continue }
      line += String(
        format: "  | %@ acc %.4f bal %.4f f1 %.4f nll %.4f min-recall %.3f", name, metrics.accuracy,
        metrics.balancedAccuracy, metrics.macroF1, metrics.negativeLogLikelihood, metrics.lowestRecall)
    }
    return line + (best ? "  *" : "")
  }
}
