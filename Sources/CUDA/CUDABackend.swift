import Tensor

/// The `Backend` contract on a CUDA device (a GPU, or the emulated device): every tensor
/// a device buffer, every operation the kernels and cuBLASLt GEMMs of `DeviceOperations`,
/// on one stream, in float32.
///
/// A failed CUDA call is kept as the backend's `failure` (the contract's "Failures"): what
/// follows is skipped and `check()` throws it, so an out-of-memory device ends a task with
/// an error, not the worker with a crash.
///
/// A training step can be recorded once as a CUDA graph (`record`) and replayed with one
/// launch. State: float32 only, host staging in ordinary memory. What the CUDA backend
/// still lacks is listed in docs/cuda.md.
public final class CUDABackend: Backend {
  public let operations: DeviceOperations
  public var device: CUDADevice { operations.device }
  public var name: String { "cuda:\(device.ordinal) (\(device.name), \(device.architecture), float32)" }
  /// Host tensors the data pipeline writes a device tensor's contents into, one per tensor.
  private var stagingBuffers: [ObjectIdentifier: Tensor] = [:]
  /// Gradient clipping's per-gradient sums and norm, sized once.
  private var clipScratch: (partials: DeviceBuffer, norm: DeviceBuffer)?
  private var lossWorkspace: DeviceOperations.LossWorkspace?

  public init(operations: DeviceOperations) { self.operations = operations }

  /// The emulated device's GPU `ordinal` (Sources/CUDAEmulator): the CUDA backend's code
  /// run on the CPU.
  public static func emulated(_ ordinal: Int = 0) throws -> CUDABackend { CUDABackend(operations: try .emulated(ordinal)) }

  /// The first failure, after which every operation is skipped (a CUDA error leaves the
  /// stream's results undefined, so nothing after it could be trusted).
  public private(set) var failure: DeviceFailure?

  public func check() throws { if let failure { throw failure } }

  /// Every call ends here: the contract's operations have no error to return, so the first
  /// one is kept for `check()`.
  func run(_ what: @autoclosure () -> String, asking bytes: Int? = nil, _ body: () throws -> Void) {
    guard failure == nil else { return }
    do {
      try device.makeCurrent()
      try body()
    } catch {
      var memory: (asked: Int, free: Int, heldByBackend: Int)?
      if let bytes, case CUDAError.call(_, 2, _, _) = error {
        memory = (bytes, (try? device.memoryInformation().free) ?? 0, device.liveBytes)
      }
      failure = DeviceFailure(device: name, operation: what(), reason: "\(error)", memory: memory)
    }
  }

  /// The device buffer of one of this backend's tensors.
  func buffer(_ tensor: Tensor) -> DeviceBuffer {
    guard let buffer = tensor.storage as? DeviceBuffer else {
      preconditionFailure("a tensor \(tensor.shape) that is not the CUDA backend's (\(tensor.isHost ? "host memory" : "another backend's"))")
    }
    recordedBuffers?.append(buffer)
    return buffer
  }

  func word(_ scalar: DeviceScalar) -> DeviceWord { DeviceWord(buffer(scalar.tensor), index: scalar.index) }

  // MARK: Recording

  /// The buffers the recording in progress names (nil when none is): its graph keeps them,
  /// so that a tensor released while the graph lives cannot hand its block to another
  /// tensor that the replays would then write.
  private var recordedBuffers: [DeviceBuffer]?

  /// A training step's operations as one CUDA graph, and the buffers they name.
  final class Graph: RecordedOperations {
    let device: CUDADevice
    let exec: CUDADriverAPI.GraphExec
    let buffers: [DeviceBuffer]

    init(device: CUDADevice, exec: CUDADriverAPI.GraphExec, buffers: [DeviceBuffer]) {
      self.device = device
      self.exec = exec
      self.buffers = buffers
    }

    deinit {
      try? device.makeCurrent()
      device.driver.destroy(graph: exec)
    }
  }

  /// Captures the backend's stream while `body` calls the operations (they are recorded,
  /// not run) and instantiates the graph. A call the graph cannot hold (a download, an
  /// allocation) fails the recording: it is kept as the backend's failure, like any other.
  public func record(_ body: () -> Void) -> RecordedOperations? {
    guard failure == nil else { return nil }
    run("beginning to record a CUDA graph") { try device.driver.beginCapture(device.stream) }
    guard failure == nil else { return nil }
    recordedBuffers = []
    body()
    let buffers = recordedBuffers ?? []
    recordedBuffers = nil
    // The capture ends even after a failure inside it, so the stream runs its work again.
    var exec: CUDADriverAPI.GraphExec = nil
    do {
      try device.makeCurrent()
      exec = try device.driver.endCapture(device.stream)
    } catch {
      if failure == nil { failure = DeviceFailure(device: name, operation: "recording a CUDA graph", reason: "\(error)", memory: nil) }
    }
    guard failure == nil, exec != nil else { return nil }
    return Graph(device: device, exec: exec, buffers: buffers)
  }

  public func replay(_ recording: RecordedOperations) {
    guard let graph = recording as? Graph, graph.device === device else {
      preconditionFailure("a recording of another backend replayed on \(name)")
    }
    run("replaying a CUDA graph") { try device.driver.launch(graph.exec, stream: device.stream) }
  }

  func buffer(_ tensor: Tensor?) -> DeviceBuffer? { tensor.map { buffer($0) } }

  // MARK: Memory

  public func makeTensor(shape: [Int]) -> Tensor {
    let count = max(shape.reduce(1, *), 1)
    var made: DeviceBuffer?
    run("makeTensor(\(shape))", asking: count * 4) {
      made = try device.buffer(floats: count)
      try made!.fill(0)
    }
    // After a failure the tensor has no memory; no operation will touch it (they are skipped).
    return Tensor(shape: shape, storage: made ?? Unallocated())
  }

  /// The storage of a tensor made after the backend failed.
  final class Unallocated {}

  public func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor, offset: Int) {
    guard let base = values.baseAddress, !values.isEmpty else { return }
    precondition(offset >= 0 && offset + values.count <= tensor.capacity, "\(values.count) values at \(offset) into \(tensor.capacity)")
    run("upload") { try device.driver.copy(to: buffer(tensor).address + UInt64(offset * 4), from: base, bytes: values.count * 4, stream: device.stream) }
  }

  public func uploadLabels(_ labels: UnsafeBufferPointer<Int32>, to tensor: Tensor) {
    guard let base = labels.baseAddress, !labels.isEmpty else { return }
    precondition(labels.count <= tensor.capacity, "\(labels.count) labels into \(tensor.capacity) words")
    run("uploadLabels") { try device.driver.copy(to: buffer(tensor).address, from: base, bytes: labels.count * 4, stream: device.stream) }
  }

  public func download(_ tensor: Tensor, offset: Int, into values: UnsafeMutableBufferPointer<Float>) {
    guard let base = values.baseAddress, !values.isEmpty else { return }
    precondition(offset >= 0 && offset + values.count <= tensor.capacity, "\(values.count) values at \(offset) from \(tensor.capacity)")
    run("download") {
      try device.driver.copy(to: base, from: buffer(tensor).address + UInt64(offset * 4), bytes: values.count * 4, stream: device.stream)
      try device.synchronize()
    }
    // Values that were never computed read as NaN, never as a plausible number.
    if failure != nil { values.update(repeating: .nan) }
  }

  public func fill(_ tensor: Tensor, with value: Float, count: Int) {
    guard count > 0 else { return }
    run("fill") { try device.driver.fill(buffer(tensor).address, words: value.bitPattern, count: count, stream: device.stream) }
  }

  public func copy(_ source: Tensor, offset sourceOffset: Int, to destination: Tensor, offset destinationOffset: Int, count: Int) {
    guard count > 0 else { return }
    precondition(sourceOffset >= 0 && destinationOffset >= 0 && sourceOffset + count <= source.capacity && destinationOffset + count <= destination.capacity)
    run("copy") {
      try device.driver.copy(
        to: buffer(destination).address + UInt64(destinationOffset * 4), from: buffer(source).address + UInt64(sourceOffset * 4),
        bytes: count * 4, stream: device.stream)
    }
  }

  public func staging(for tensor: Tensor) -> Tensor {
    if let staging = stagingBuffers[ObjectIdentifier(tensor)] { return staging }
    let staging = Tensor(shape: tensor.shape)
    stagingBuffers[ObjectIdentifier(tensor)] = staging
    return staging
  }

  public func commit(staging: Tensor, to tensor: Tensor, count: Int) {
    upload(UnsafeBufferPointer(start: staging.data, count: count), to: tensor, offset: 0)
  }

  public func synchronize() { run("synchronize") { try device.synchronize() } }

  /// The images in device memory, unless they would take more than a quarter of what is
  /// free (the model, its members and their activations come first): the host then
  /// assembles the batches, as on the CPU.
  public func holdImages(_ pixels: UnsafeBufferPointer<UInt8>) -> Tensor? {
    guard failure == nil, let base = pixels.baseAddress, !pixels.isEmpty else { return nil }
    guard let free = try? device.memoryInformation().free, pixels.count <= free / 4 else { return nil }
    let words = (pixels.count + 3) / 4
    var made: DeviceBuffer?
    run("holdImages(\(pixels.count) bytes)", asking: words * 4) {
      made = try device.buffer(floats: words)
      try device.driver.copy(to: made!.address, from: UnsafeRawPointer(base), bytes: pixels.count, stream: device.stream)
    }
    return made.map { Tensor(shape: [words], storage: $0) }
  }

  public func assembleImages(
    from held: Tensor, plan: Tensor, batch: Int, height: Int, width: Int, channels: Int, normalization: Tensor, images: Tensor
  ) {
    precondition(plan.capacity >= 8 * batch && images.capacity >= batch * height * width * channels && normalization.capacity >= 2 * channels)
    run("assembleImages") {
      try operations.assembleImages(
        from: buffer(held), plan: buffer(plan), batch: batch, height: height, width: width, channels: channels,
        normalization: buffer(normalization), images: buffer(images))
    }
  }

  // MARK: Operations

  public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float,
    c: Tensor, ldc: Int
  ) {
    run("gemm \(m)×\(n)×\(k)") {
      try operations.gemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: buffer(a), lda: lda, b: buffer(b), ldb: ldb,
        beta: beta, c: buffer(c), ldc: ldc)
    }
  }

  public func convolution3x3Forward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int, output: Tensor, outputChannels: Int, columns: Tensor
  ) {
    run("convolution3x3Forward") {
      try operations.convolution3x3Forward(
        input: buffer(input), inputGeometry, weight: buffer(weight), stride: stride, output: buffer(output), outputChannels: outputChannels,
        columns: buffer(columns))
    }
  }

  public func convolution3x3Backward(
    inputGradient: Tensor?, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int, outputGradient: Tensor, outputChannels: Int,
    columns: Tensor, weightGradient: Tensor
  ) {
    run("convolution3x3Backward") {
      try operations.convolution3x3Backward(
        inputGradient: buffer(inputGradient), inputGeometry, weight: buffer(weight), stride: stride, outputGradient: buffer(outputGradient),
        outputChannels: outputChannels, columns: buffer(columns), weightGradient: buffer(weightGradient))
    }
  }

  public func depthwiseForward(input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int, output: Tensor) {
    run("depthwiseForward") {
      try operations.depthwiseForward(input: buffer(input), inputGeometry, weight: buffer(weight), stride: stride, output: buffer(output))
    }
  }

  public func depthwiseBackward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int, outputGradient: Tensor, inputGradient: Tensor,
    weightGradient: Tensor
  ) {
    run("depthwiseBackward") {
      try operations.depthwiseBackward(
        input: buffer(input), inputGeometry, weight: buffer(weight), stride: stride, outputGradient: buffer(outputGradient),
        inputGradient: buffer(inputGradient), weightGradient: buffer(weightGradient))
    }
  }

  public func batchNormTrainingForward(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor, epsilon: Float, activation: Activation, output: Tensor,
    batchMean: Tensor, batchVariance: Tensor
  ) {
    run("batchNormTrainingForward") {
      try operations.batchNormTrainingForward(
        input: buffer(input), rows: rows, channels: channels, scale: buffer(scale), shift: buffer(shift), epsilon: epsilon,
        activation: activation, output: buffer(output), batchMean: buffer(batchMean), batchVariance: buffer(batchVariance))
    }
  }

  public func batchNormInferenceForward(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor, runningMean: Tensor, runningVariance: Tensor, epsilon: Float,
    activation: Activation, output: Tensor
  ) {
    run("batchNormInferenceForward") {
      try operations.batchNormInferenceForward(
        input: buffer(input), rows: rows, channels: channels, scale: buffer(scale), shift: buffer(shift), runningMean: buffer(runningMean),
        runningVariance: buffer(runningVariance), epsilon: epsilon, activation: activation, output: buffer(output))
    }
  }

  public func batchNormBackward(
    input: Tensor, output: Tensor, rows: Int, channels: Int, scale: Tensor, batchMean: Tensor, batchVariance: Tensor, epsilon: Float,
    activation: Activation, outputGradient: Tensor, inputGradient: Tensor, scaleGradient: Tensor, shiftGradient: Tensor
  ) {
    run("batchNormBackward") {
      try operations.batchNormBackward(
        input: buffer(input), output: buffer(output), rows: rows, channels: channels, scale: buffer(scale), batchMean: buffer(batchMean),
        batchVariance: buffer(batchVariance), epsilon: epsilon, activation: activation, outputGradient: buffer(outputGradient),
        inputGradient: buffer(inputGradient), scaleGradient: buffer(scaleGradient), shiftGradient: buffer(shiftGradient))
    }
  }

  public func batchNormInferenceBackward(
    output: Tensor, rows: Int, channels: Int, scale: Tensor, runningVariance: Tensor, epsilon: Float, activation: Activation,
    outputGradient: Tensor, inputGradient: Tensor
  ) {
    run("batchNormInferenceBackward") {
      try operations.batchNormInferenceBackward(
        output: buffer(output), rows: rows, channels: channels, scale: buffer(scale), runningVariance: buffer(runningVariance),
        epsilon: epsilon, activation: activation, outputGradient: buffer(outputGradient), inputGradient: buffer(inputGradient))
    }
  }

  public func residualForward(input: Tensor, branch: Tensor, sampleScale: Tensor?, batch: Int, sampleSize: Int, output: Tensor) {
    run("residualForward") {
      try operations.residualForward(
        input: buffer(input), branch: buffer(branch), sampleScale: buffer(sampleScale), batch: batch, sampleSize: sampleSize,
        output: buffer(output))
    }
  }

  public func scaleSamples(_ gradient: Tensor, sampleScale: Tensor, batch: Int, sampleSize: Int, output: Tensor) {
    run("scaleSamples") {
      try operations.scaleSamples(buffer(gradient), sampleScale: buffer(sampleScale), batch: batch, sampleSize: sampleSize, output: buffer(output))
    }
  }

  public func accumulate(_ a: Tensor, _ b: Tensor, count: Int) {
    run("accumulate") { try operations.accumulate(buffer(a), buffer(b), count: count) }
  }

  public func globalAveragePoolForward(input: Tensor, _ geometry: ImageGeometry, output: Tensor) {
    run("globalAveragePoolForward") { try operations.globalAveragePoolForward(input: buffer(input), geometry, output: buffer(output)) }
  }

  public func globalAveragePoolBackward(outputGradient: Tensor, _ geometry: ImageGeometry, inputGradient: Tensor) {
    run("globalAveragePoolBackward") {
      try operations.globalAveragePoolBackward(outputGradient: buffer(outputGradient), geometry, inputGradient: buffer(inputGradient))
    }
  }

  public func dropoutForward(
    input: Tensor, count: Int, dropProbability: Float, seed: UInt64, stream: DeviceScalar, mask: Tensor, output: Tensor
  ) {
    run("dropoutForward") {
      try operations.dropoutForward(
        input: buffer(input), count: count, dropProbability: dropProbability, seed: seed, stream: word(stream), mask: buffer(mask),
        output: buffer(output))
    }
  }

  public func dropoutBackward(gradient: Tensor, count: Int, mask: Tensor) {
    run("dropoutBackward") { try operations.dropoutBackward(gradient: buffer(gradient), count: count, mask: buffer(mask)) }
  }

  public func linearForward(
    input: Tensor, batch: Int, inputFeatures: Int, weight: Tensor, bias: Tensor, outputFeatures: Int, output: Tensor
  ) {
    run("linearForward") {
      try operations.linearForward(
        input: buffer(input), batch: batch, inputFeatures: inputFeatures, weight: buffer(weight), bias: buffer(bias),
        outputFeatures: outputFeatures, output: buffer(output))
    }
  }

  public func linearBackward(
    input: Tensor, batch: Int, inputFeatures: Int, weight: Tensor, outputFeatures: Int, outputGradient: Tensor, inputGradient: Tensor,
    weightGradient: Tensor, biasGradient: Tensor
  ) {
    run("linearBackward") {
      try operations.linearBackward(
        input: buffer(input), batch: batch, inputFeatures: inputFeatures, weight: buffer(weight), outputFeatures: outputFeatures,
        outputGradient: buffer(outputGradient), inputGradient: buffer(inputGradient), weightGradient: buffer(weightGradient),
        biasGradient: buffer(biasGradient))
    }
  }

  public func softmaxCrossEntropy(
    logits: Tensor, labels: Tensor, batch: Int, classes: Int, options: CrossEntropyOptions, logitGradient: Tensor, loss: Tensor
  ) {
    run("softmaxCrossEntropy") {
      if (lossWorkspace?.weights.floatCount ?? 0) < batch { lossWorkspace = try DeviceOperations.LossWorkspace(device: device, batch: batch) }
      let workspace = lossWorkspace!
      try operations.softmaxCrossEntropy(
        logits: buffer(logits), labels: buffer(labels), batch: batch, classes: classes, labelSmoothing: options.labelSmoothing,
        classWeights: buffer(options.classWeights), logitAdjustment: buffer(options.logitAdjustment), focalGamma: options.focalGamma,
        softTargets: buffer(options.softTargets), logitGradient: buffer(logitGradient), workspace: workspace)
      try device.driver.copy(to: buffer(loss).address, from: workspace.loss.address, bytes: 4, stream: device.stream)
    }
  }

  // MARK: The rest of a training step

  public func updateRunningStatistics(
    runningMean: Tensor, runningVariance: Tensor, batchMean: Tensor, batchVariance: Tensor, channels: Int, momentum: Float, unbiasing: Float
  ) {
    run("updateRunningStatistics") {
      try operations.updateRunningStatistics(
        runningMean: buffer(runningMean), runningVariance: buffer(runningVariance), batchMean: buffer(batchMean),
        batchVariance: buffer(batchVariance), channels: channels, momentum: momentum, unbiasing: unbiasing)
    }
  }

  public func stochasticDepthScales(seed: UInt64, stream: DeviceScalar, block: Int, batch: Int, dropProbability: Float, output: Tensor) {
    run("stochasticDepthScales") {
      try operations.stochasticDepthScales(
        seed: seed, stream: word(stream), block: block, batch: batch, dropProbability: dropProbability, output: buffer(output))
    }
  }

  public func sgdStep(
    weight: Tensor, gradient: Tensor, velocity: Tensor, count: Int, learningRate: DeviceScalar, momentum: DeviceScalar, decay: Float,
    nesterov: Bool
  ) {
    run("sgdStep") {
      try operations.sgdStep(
        weight: buffer(weight), gradient: buffer(gradient), velocity: buffer(velocity), count: count, learningRate: word(learningRate),
        momentum: word(momentum), decay: decay, nesterov: nesterov)
    }
  }

  public func adamWStep(
    weight: Tensor, gradient: Tensor, first: Tensor, second: Tensor, count: Int, beta1: Float, beta2: Float, epsilon: Float,
    decayFactor: DeviceScalar?, stepSize: DeviceScalar, rootCorrection2: DeviceScalar
  ) {
    run("adamWStep") {
      try operations.adamWStep(
        weight: buffer(weight), gradient: buffer(gradient), first: buffer(first), second: buffer(second), count: count, beta1: beta1,
        beta2: beta2, epsilon: epsilon, decayFactor: decayFactor.map(word), stepSize: word(stepSize), rootCorrection2: word(rootCorrection2))
    }
  }

  public func clipGradientNorm(_ gradients: [Tensor], maximumNorm: Float, norm: Tensor) {
    run("clipGradientNorm") {
      if (clipScratch?.partials.floatCount ?? 0) < gradients.count {
        clipScratch = (try device.buffer(floats: gradients.count), try device.buffer(floats: 1))
      }
      let scratch = clipScratch!
      try operations.clipGradientNorm(
        gradients.map { (buffer($0), $0.capacity) }, maximumNorm: maximumNorm, partials: scratch.partials, norm: scratch.norm)
      try device.driver.copy(to: buffer(norm).address, from: scratch.norm.address, bytes: 4, stream: device.stream)
    }
  }

  public func exponentialMovingAverage(shadow: Tensor, value: Tensor, count: Int, decay: Float) {
    run("exponentialMovingAverage") {
      try operations.exponentialMovingAverage(shadow: buffer(shadow), value: buffer(value), count: count, decay: decay)
    }
  }
}
