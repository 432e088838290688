/// The spatial size of a batch of NHWC images.
public struct ImageGeometry: Equatable, Sendable, CustomStringConvertible {
  public var batch: Int
  public var height: Int
  public var width: Int
  public var channels: Int

  public init(batch: Int, height: Int, width: Int, channels: Int) {
    self.batch = batch
    self.height = height
    self.width = width
    self.channels = channels
  }

  /// Pixels in the batch: the row count of the [N·H·W, C] matrix view.
  public var rows: Int { batch * height * width }
  public var count: Int { rows * channels }
  public var description: String { "[\(batch), \(height), \(width), \(channels)]" }

  /// The output size of a 3×3 convolution with padding 1 and this stride.
  public func convolved3x3(stride: Int, channels outputChannels: Int) -> ImageGeometry {
    ImageGeometry(
      batch: batch, height: (height - 1) / stride + 1, width: (width - 1) / stride + 1,
      channels: outputChannels)
  }
}

/// What follows a batch normalisation.
public enum Activation: Sendable {
  case none
  /// min(max(x, 0), 6); its gradient is zero outside (0, 6), as PyTorch's hardtanh.
  case relu6
}

/// The operations MobileNetV2 training needs, coarse and fused where it pays, over
/// buffers the backend owns. The contract, in one page (docs/compute-core.md has it too):
///
/// - **Memory.** Every tensor NN and Training compute with comes from `makeTensor` (zero-
///   filled) and is read and written only by the backend: `upload`, `download`, `fill`,
///   `copy` and the operations below. A CPU backend's tensors are host memory and these
///   are plain copies (or nothing: `staging(for:)` is the tensor itself); a device backend's
///   are device buffers, with no host memory (`Tensor.data` stops the program). Host tensors made with
///   `Tensor(shape:)` belong to the data pipeline and reach the backend only through
///   `upload` or `commit(staging:to:count:)`.
/// - **Layout.** Float32 words, NHWC images; weights in the layout named per operation.
///   Labels are int32 words in a tensor of as many words (`uploadLabels`).
/// - **Aliasing.** Inputs and outputs of an operation are distinct tensors unless the
///   operation says otherwise: batch-norm backward (both modes) and dropout backward run in
///   place; `accumulate` adds into its first operand. No operation reads an output before
///   writing it, so outputs need not be cleared; weight gradients are *overwritten*, never
///   accumulated (each parameter is used once per step).
/// - **Ordering.** Operations run in the order they are called, as on one stream. A device
///   backend may return before they finish: `download` and `synchronize` are the only
///   points where the host waits, so a training step waits only where a value is read
///   back (the loss when it is logged, the logits of an evaluation).
/// - **Sizes.** The batch (or row or element count) is an argument of every operation, so a
///   tensor sized for the largest batch serves smaller ones; an optional input gradient is
///   skipped when nil (the first layer needs none).
/// - **Determinism.** The same inputs give the same bits on the same backend: fixed
///   reduction orders, no atomics, random numbers from `RandomStream` keyed by position.
/// - **Recording.** A backend whose operations each cost a launch (a GPU) can record a
///   sequence of them once (`record`) and replay it as one unit (`replay`): a CUDA graph.
///   A recording keeps every argument it was called with; a value that changes between
///   replays is a `DeviceScalar` the operation reads when it runs (the learning rate, the
///   step's random stream, written by `StepScalars` before each replay). A recorded body
///   may not upload, download, synchronise or make tensors.
/// - **Failures.** The operations return nothing, so a backend that can fail (a device out
///   of memory, a kernel that will not launch) keeps its first failure, skips every
///   operation after it (downloads read NaN) and throws it from `check()`. Callers check
///   where they can say what they were doing: after building a model, after a step, after
///   an evaluation. The CPU backend cannot fail this way; its `check()` does nothing.
///
/// The CPU backend is the reference; any other backend must match it operation by
/// operation (CUDATests checks the CUDA kernels against it on the emulated device).
public protocol Backend: AnyObject {
  /// A short name for logs ("cpu (2 threads)").
  var name: String { get }

  // MARK: Memory

  /// A zero-filled tensor of this backend.
  func makeTensor(shape: [Int]) -> Tensor
  /// values → tensor[offset…].
  func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor, offset: Int)
  /// Labels as int32 words → tensor[0…].
  func uploadLabels(_ labels: UnsafeBufferPointer<Int32>, to tensor: Tensor)
  /// tensor[offset…] → values, after every operation called before (a synchronisation
  /// point).
  func download(_ tensor: Tensor, offset: Int, into values: UnsafeMutableBufferPointer<Float>)
  /// tensor[0..<count] = value.
  func fill(_ tensor: Tensor, with value: Float, count: Int)
  /// destination[destinationOffset…] = source[sourceOffset…], `count` values.
  func copy(_ source: Tensor, offset sourceOffset: Int, to destination: Tensor, offset destinationOffset: Int, count: Int)
  /// A host tensor the data pipeline writes `tensor`'s next contents into: the tensor
  /// itself where the backend computes in host memory (no copy), else a host buffer of the
  /// same size kept for the purpose (pinned, where the device has such memory).
  func staging(for tensor: Tensor) -> Tensor
  /// Moves what was written into `staging(for: tensor)` into `tensor` (nothing to do when
  /// they are the same tensor).
  func commit(staging: Tensor, to tensor: Tensor, count: Int)
  /// 8-bit images [count, H, W, C] held by the backend for the whole run, from which it
  /// assembles batches itself (`assembleImages`): a device keeps its data set in device
  /// memory and copies only each batch's plan (32 bytes an example, not the batch's
  /// floats). Nil where the host assembles the batches instead: the CPU backend (its batch
  /// is assembled in place), or images that would take more than a quarter of the free
  /// device memory.
  func holdImages(_ pixels: UnsafeBufferPointer<UInt8>) -> Tensor?
  /// images[slot] = the held image that plan[slot] names, shifted, flipped and erased as
  /// it says, normalised: pixel · normalization[c] + normalization[C + c]. The plan is
  /// int32 [batch, 8], as `BatchAssembler.plan` writes it; the result is bit for bit what
  /// `BatchAssembler.assemble` gives on the host.
  func assembleImages(
    from held: Tensor, plan: Tensor, batch: Int, height: Int, width: Int, channels: Int, normalization: Tensor, images: Tensor)
  /// Waits until every operation called so far has finished.
  func synchronize()
  /// Throws the first failure since the backend was made (a `DeviceFailure`), if any.
  /// Does not wait for the device: a failure the device has not yet reported shows at the
  /// next `download` or `synchronize`.
  func check() throws

  // MARK: Recording

  /// Records the operations `body` calls, without running them, as one unit `replay` runs
  /// (see the contract's "Recording"). Nil where the backend does not record (the CPU: an
  /// operation there costs no launch), without calling `body`: the caller then calls the
  /// operations itself each time.
  func record(_ body: () -> Void) -> RecordedOperations?
  /// Runs a recording of this backend, reading each `DeviceScalar` as it is now.
  func replay(_ recording: RecordedOperations)

  // MARK: Matrix products

  /// c[m, n] = alpha · op(a) · op(b) + beta · c, all row-major, op = optional transpose.
  func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float, c: Tensor, ldc: Int)

  // MARK: Convolutions

  /// Full 3×3 convolution, padding 1 (the stem). weight: [Cout, 3, 3, Cin].
  /// `columns` is scratch of at least output.rows × 9·Cin floats, kept for the backward.
  func convolution3x3Forward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int,
    output: Tensor, outputChannels: Int, columns: Tensor)

  /// Gradients of `convolution3x3Forward`, reusing its `columns`.
  func convolution3x3Backward(
    inputGradient: Tensor?, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int,
    outputGradient: Tensor, outputChannels: Int, columns: Tensor, weightGradient: Tensor)

  /// Depthwise 3×3 convolution, padding 1, stride 1 or 2. weight: [3, 3, C].
  func depthwiseForward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int, output: Tensor)

  /// Gradients of `depthwiseForward` with respect to its input and weight, in one pass.
  func depthwiseBackward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int,
    outputGradient: Tensor, inputGradient: Tensor, weightGradient: Tensor)

  // MARK: Batch normalisation (+ activation)

  /// Training mode: normalises with the batch's statistics over N·H·W, writes them to
  /// `batchMean`/`batchVariance` (biased variance), then applies the activation.
  func batchNormTrainingForward(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor, epsilon: Float,
    activation: Activation, output: Tensor, batchMean: Tensor, batchVariance: Tensor)

  /// Evaluation mode: normalises with running statistics.
  func batchNormInferenceForward(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor,
    runningMean: Tensor, runningVariance: Tensor, epsilon: Float, activation: Activation,
    output: Tensor)

  /// Gradients of the training-mode forward. `output` is the forward's output (for the
  /// activation's mask); `inputGradient` may be the same tensor as `outputGradient`.
  func batchNormBackward(
    input: Tensor, output: Tensor, rows: Int, channels: Int, scale: Tensor,
    batchMean: Tensor, batchVariance: Tensor, epsilon: Float, activation: Activation,
    outputGradient: Tensor, inputGradient: Tensor, scaleGradient: Tensor,
    shiftGradient: Tensor)

  /// Gradient of the evaluation-mode forward with respect to its input (running
  /// statistics are constants): dx = mask·dy·γ/√(σ²+ε). For explanations (Grad-CAM), not
  /// training; `inputGradient` may be the same tensor as `outputGradient`.
  func batchNormInferenceBackward(
    output: Tensor, rows: Int, channels: Int, scale: Tensor, runningVariance: Tensor, epsilon: Float,
    activation: Activation, outputGradient: Tensor, inputGradient: Tensor)

  // MARK: Element-wise and pooling

  /// output = input + branch · sampleScale[n] (sampleScale nil means 1): the residual
  /// connection, with stochastic depth's per-example keep/scale factor.
  func residualForward(
    input: Tensor, branch: Tensor, sampleScale: Tensor?, batch: Int, sampleSize: Int,
    output: Tensor)

  /// branchGradient = outputGradient · sampleScale[n].
  func scaleSamples(
    _ gradient: Tensor, sampleScale: Tensor, batch: Int, sampleSize: Int, output: Tensor)

  /// a += b over `count` values.
  func accumulate(_ a: Tensor, _ b: Tensor, count: Int)

  /// [N, H, W, C] → [N, C], the mean over H·W.
  func globalAveragePoolForward(input: Tensor, _ geometry: ImageGeometry, output: Tensor)
  func globalAveragePoolBackward(
    outputGradient: Tensor, _ geometry: ImageGeometry, inputGradient: Tensor)

  /// Inverted dropout: mask = (u ≥ p) / (1 − p) with u at each index from the dropout
  /// stream of `seed` whose coordinate is the bits of `stream` (the step); output = input · mask.
  func dropoutForward(
    input: Tensor, count: Int, dropProbability: Float, seed: UInt64, stream: DeviceScalar, mask: Tensor,
    output: Tensor)

  /// gradient ·= mask, in place.
  func dropoutBackward(gradient: Tensor, count: Int, mask: Tensor)

  // MARK: Classifier

  /// output[N, O] = input[N, K] · weight[O, K]ᵀ + bias[O].
  func linearForward(
    input: Tensor, batch: Int, inputFeatures: Int, weight: Tensor, bias: Tensor,
    outputFeatures: Int, output: Tensor)

  func linearBackward(
    input: Tensor, batch: Int, inputFeatures: Int, weight: Tensor, outputFeatures: Int,
    outputGradient: Tensor, inputGradient: Tensor, weightGradient: Tensor,
    biasGradient: Tensor)

  /// Softmax cross-entropy, writing ∂loss/∂logits and the loss into `loss[0]` (read it
  /// back with `download` only when it is logged). `labels` holds int32 words; the
  /// options' tensors are this backend's (see `CrossEntropyOptions` for smoothing, class
  /// weights, logit adjustment and focus).
  func softmaxCrossEntropy(
    logits: Tensor, labels: Tensor, batch: Int, classes: Int, options: CrossEntropyOptions,
    logitGradient: Tensor, loss: Tensor)

  // MARK: What else a training step does

  /// Batch norm's running statistics (PyTorch's momentum m):
  /// mean ← (1 − m)·mean + m·batchMean, variance ← (1 − m)·variance + m·batchVariance·unbiasing.
  func updateRunningStatistics(
    runningMean: Tensor, runningVariance: Tensor, batchMean: Tensor, batchVariance: Tensor, channels: Int, momentum: Float,
    unbiasing: Float)

  /// Stochastic depth's per-example factors for residual block `block`: 1/(1 − p) where
  /// `random.uniform(at: block << 32 | n) ≥ p`, else 0 (torchvision's "row" mode), with
  /// `random` the stochastic-depth stream of `seed` whose coordinate is the bits of `stream`.
  func stochasticDepthScales(seed: UInt64, stream: DeviceScalar, block: Int, batch: Int, dropProbability: Float, output: Tensor)

  /// SGD with momentum on one parameter (PyTorch's form): g' = g + decay·w,
  /// v ← μ·v + g', w ← w − lr·(Nesterov ? g' + μ·v : v). The learning rate and μ are read
  /// when the step runs (one-cycle training may move both every step).
  func sgdStep(
    weight: Tensor, gradient: Tensor, velocity: Tensor, count: Int, learningRate: DeviceScalar, momentum: DeviceScalar, decay: Float,
    nesterov: Bool)

  /// AdamW on one parameter: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²,
  /// w ← w·decayFactor − stepSize·m/(√v/rootCorrection2 + ε), with decayFactor = 1 − lr·λ
  /// (nil: 1, no decay), stepSize = lr/(1 − β₁ᵗ), rootCorrection2 = √(1 − β₂ᵗ).
  func adamWStep(
    weight: Tensor, gradient: Tensor, first: Tensor, second: Tensor, count: Int, beta1: Float, beta2: Float, epsilon: Float,
    decayFactor: DeviceScalar?, stepSize: DeviceScalar, rootCorrection2: DeviceScalar)

  /// Scales every gradient by min(1, maximumNorm/(‖g‖ + 10⁻⁶)) for the global L2 norm ‖g‖
  /// over all of them (PyTorch's clip_grad_norm_), which it writes to `norm[0]`.
  func clipGradientNorm(_ gradients: [Tensor], maximumNorm: Float, norm: Tensor)

  /// shadow ← decay·shadow + (1 − decay)·value over `count` values (the weight average).
  func exponentialMovingAverage(shadow: Tensor, value: Tensor, count: Int, decay: Float)
}

extension Backend {
  public func makeTensor(count: Int) -> Tensor { makeTensor(shape: [count]) }

  /// A tensor of this backend holding `values`.
  public func makeTensor(shape: [Int], values: [Float]) -> Tensor {
    let tensor = makeTensor(shape: shape)
    precondition(values.count == tensor.capacity, "\(values.count) values for shape \(shape)")
    values.withUnsafeBufferPointer { upload($0, to: tensor, offset: 0) }
    return tensor
  }

  public func upload(_ values: [Float], to tensor: Tensor, offset: Int = 0) {
    values.withUnsafeBufferPointer { upload($0, to: tensor, offset: offset) }
  }

  /// The first `count` values (all by default), read back.
  public func download(_ tensor: Tensor, count: Int? = nil, offset: Int = 0) -> [Float] {
    var values = [Float](repeating: 0, count: count ?? tensor.capacity - offset)
    values.withUnsafeMutableBufferPointer { download(tensor, offset: offset, into: $0) }
    return values
  }

  public func fill(_ tensor: Tensor, with value: Float) { fill(tensor, with: value, count: tensor.capacity) }

  /// destination[0..<count] = source[0..<count].
  public func copy(_ source: Tensor, to destination: Tensor, count: Int) {
    copy(source, offset: 0, to: destination, offset: 0, count: count)
  }
}

/// The variants of softmax cross-entropy Quorum trains with. With targets
/// q = (1 − ε)·t + ε/K, where t is onehot(y) or the given soft targets, and
/// p = softmax(z + τ·log π):
///   loss = Σᵢ wᵢ · (−Σ_c q_ic (1 − p_ic)^γ log p_ic) / Σᵢ wᵢ,   wᵢ = Σ_c t_ic·w[c]
/// ε = 0, w = 1, τ = 0, γ = 0 is plain cross-entropy; with weights it is PyTorch's
/// `CrossEntropyLoss(weight:, label_smoothing:)`.
public struct CrossEntropyOptions {
  /// Label smoothing ε.
  public var labelSmoothing: Float
  /// Per-class weights w (nil: all 1).
  public var classWeights: Tensor?
  /// Added to the logits before the softmax during training: τ·log π_c for the class
  /// prior π (logit adjustment, Menon et al. 2021; τ = 1 is balanced softmax, Ren et al.
  /// 2020). Predictions use the raw logits. nil: none.
  public var logitAdjustment: Tensor?
  /// Focal loss exponent γ (Lin et al. 2017); 0: cross-entropy.
  public var focalGamma: Float
  /// Soft targets t [N, K] (rows summing to 1) instead of one-hot labels: mixup and
  /// CutMix mix two labels, distillation uses a teacher's probabilities. nil: the labels.
  public var softTargets: Tensor?

  public init(
    labelSmoothing: Float = 0, classWeights: Tensor? = nil, logitAdjustment: Tensor? = nil, focalGamma: Float = 0,
    softTargets: Tensor? = nil
  ) {
    self.labelSmoothing = labelSmoothing
    self.classWeights = classWeights
    self.logitAdjustment = logitAdjustment
    self.focalGamma = focalGamma
    self.softTargets = softTargets
  }
}
