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

/// The operations MobileNetV2 training needs, coarse and fused where it pays.
///
/// Conventions for every backend: tensors are NHWC float32; weights are in the layouts
/// named per operation; gradients of weights are *overwritten* (each parameter is used
/// once per step, so nothing needs zeroing); an optional input gradient is skipped when
/// nil (the first layer needs none). The CPU backend is the reference; any other backend
/// must match it operation by operation.
public protocol Backend: AnyObject {
  /// A short name for logs ("cpu (2 threads)").
  var name: String { get }

  // MARK: Matrix products

  /// c[m, n] = alpha · op(a) · op(b) + beta · c, all row-major, op = optional transpose.
  func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int)

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

  /// Inverted dropout: mask = (u ≥ p) / (1 − p) with u from `random` at each index;
  /// output = input · mask.
  func dropoutForward(
    input: Tensor, count: Int, dropProbability: Float, random: RandomStream, mask: Tensor,
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

  /// Softmax cross-entropy, writing ∂loss/∂logits and returning the loss (see
  /// `CrossEntropyOptions` for smoothing, class weights, logit adjustment and focus).
  func softmaxCrossEntropy(
    logits: Tensor, labels: UnsafePointer<Int32>, batch: Int, classes: Int, options: CrossEntropyOptions,
    logitGradient: Tensor) -> Double
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
