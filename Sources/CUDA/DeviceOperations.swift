import Tensor

/// Every operation of the `Backend` contract as the CUDA backend runs it: kernels and
/// cuBLASLt GEMMs on device buffers, each named and shaped as its CPU twin in
/// `CPUBackend`, with the launch geometry each kernel's rules demand chosen here. The
/// parity tests run these on the emulated device against the CPU backend; the CUDA backend
/// (the next step: it needs `Backend` to own its buffers) calls them for its ops.
public final class DeviceOperations {
  public let device: CUDADevice
  public let blas: CUBLASLt
  /// Block size of the element-wise (grid-stride) kernels.
  let elementBlock = 256
  /// Block size of the tree reductions: a power of two ≤ 256 (launch_rules.cuh).
  let reductionBlock = 128

  public init(device: CUDADevice, blas: CUBLASLt) {
    self.device = device
    self.blas = blas
  }

  /// The emulated device's GPU `ordinal` and its cuBLASLt.
  public static func emulated(_ ordinal: Int = 0) throws -> DeviceOperations {
    DeviceOperations(device: try .emulated(ordinal), blas: try .emulated())
  }

  /// Blocks for a grid-stride kernel over `count` values: enough to cover them, capped
  /// (each thread then loops) so that a launch stays a bounded amount of scheduling.
  func elementGrid(_ count: Int) -> Int { max(1, min((count + elementBlock - 1) / elementBlock, 4096)) }

  func elementwise(_ kernel: String, count: Int, _ arguments: [KernelArgument]) throws {
    try device.launch(kernel, grid: elementGrid(count), block: elementBlock, arguments)
  }

  // MARK: Matrix products

  /// c[m, n] = alpha · op(a) · op(b) + beta · c, row-major, as `Backend.gemm`.
  public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: DeviceBuffer, lda: Int, b: DeviceBuffer, ldb: Int,
    beta: Float, c: DeviceBuffer, ldc: Int, epilogue: CUBLASLt.Epilogue = .none, bias: DeviceBuffer? = nil
  ) throws {
    try device.makeCurrent()
    try blas.gemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.address, lda: lda, b: b.address, ldb: ldb,
      beta: beta, c: c.address, ldc: ldc, epilogue: epilogue, bias: bias?.address ?? 0, stream: device.stream)
  }

  // MARK: Convolutions

  public func convolution3x3Forward(
    input: DeviceBuffer, _ geometry: ImageGeometry, weight: DeviceBuffer, stride: Int, output: DeviceBuffer, outputChannels: Int,
    columns: DeviceBuffer
  ) throws {
    let out = geometry.convolved3x3(stride: stride, channels: outputChannels)
    let patch = 9 * geometry.channels
    try elementwise(
      "im2col3x3", count: out.rows * patch,
      [.buffer(input), .int(geometry.batch), .int(geometry.height), .int(geometry.width), .int(geometry.channels), .int(stride),
       .int(out.height), .int(out.width), .buffer(columns)])
    try gemm(
      transposeA: false, transposeB: true, m: out.rows, n: outputChannels, k: patch, alpha: 1, a: columns, lda: patch, b: weight, ldb: patch,
      beta: 0, c: output, ldc: outputChannels)
  }

  public func convolution3x3Backward(
    inputGradient: DeviceBuffer?, _ geometry: ImageGeometry, weight: DeviceBuffer, stride: Int, outputGradient: DeviceBuffer,
    outputChannels: Int, columns: DeviceBuffer, weightGradient: DeviceBuffer
  ) throws {
    let out = geometry.convolved3x3(stride: stride, channels: outputChannels)
    let patch = 9 * geometry.channels
    try gemm(
      transposeA: true, transposeB: false, m: outputChannels, n: patch, k: out.rows, alpha: 1, a: outputGradient, lda: outputChannels,
      b: columns, ldb: patch, beta: 0, c: weightGradient, ldc: patch)
    guard let inputGradient else { return }
    // The patches' gradient overwrites the patches, as on the CPU; col2im gathers it.
    try gemm(
      transposeA: false, transposeB: false, m: out.rows, n: patch, k: outputChannels, alpha: 1, a: outputGradient, lda: outputChannels,
      b: weight, ldb: patch, beta: 0, c: columns, ldc: patch)
    try elementwise(
      "col2im3x3", count: geometry.count,
      [.buffer(columns), .int(geometry.batch), .int(geometry.height), .int(geometry.width), .int(geometry.channels), .int(stride),
       .int(out.height), .int(out.width), .buffer(inputGradient)])
  }

  public func depthwiseForward(input: DeviceBuffer, _ geometry: ImageGeometry, weight: DeviceBuffer, stride: Int, output: DeviceBuffer) throws {
    let out = geometry.convolved3x3(stride: stride, channels: geometry.channels)
    try elementwise(
      "depthwise_forward", count: out.count,
      [.buffer(input), .int(geometry.batch), .int(geometry.height), .int(geometry.width), .int(geometry.channels), .buffer(weight),
       .int(stride), .int(out.height), .int(out.width), .buffer(output)])
  }

  public func depthwiseBackward(
    input: DeviceBuffer, _ geometry: ImageGeometry, weight: DeviceBuffer, stride: Int, outputGradient: DeviceBuffer,
    inputGradient: DeviceBuffer, weightGradient: DeviceBuffer
  ) throws {
    let out = geometry.convolved3x3(stride: stride, channels: geometry.channels)
    let shape: [KernelArgument] = [.int(geometry.batch), .int(geometry.height), .int(geometry.width), .int(geometry.channels)]
    try elementwise(
      "depthwise_backward_input", count: geometry.count,
      [.buffer(outputGradient)] + shape + [.buffer(weight), .int(stride), .int(out.height), .int(out.width), .buffer(inputGradient)])
    try device.launch(
      "depthwise_backward_weight", grid: 9 * geometry.channels, block: reductionBlock,
      [.buffer(input), .buffer(outputGradient)] + shape + [.int(stride), .int(out.height), .int(out.width), .buffer(weightGradient)])
  }

  // MARK: Batch normalisation (+ activation)

  public func batchNormTrainingForward(
    input: DeviceBuffer, rows: Int, channels: Int, scale: DeviceBuffer, shift: DeviceBuffer, epsilon: Float, activation: Activation,
    output: DeviceBuffer, batchMean: DeviceBuffer, batchVariance: DeviceBuffer
  ) throws {
    try device.launch(
      "batchnorm_statistics", grid: channels, block: reductionBlock,
      [.buffer(input), .int(rows), .int(channels), .buffer(batchMean), .buffer(batchVariance)])
    try apply(input: input, rows: rows, channels: channels, scale: scale, shift: shift, mean: batchMean, variance: batchVariance, epsilon: epsilon, activation: activation, output: output)
  }

  public func batchNormInferenceForward(
    input: DeviceBuffer, rows: Int, channels: Int, scale: DeviceBuffer, shift: DeviceBuffer, runningMean: DeviceBuffer,
    runningVariance: DeviceBuffer, epsilon: Float, activation: Activation, output: DeviceBuffer
  ) throws {
    try apply(input: input, rows: rows, channels: channels, scale: scale, shift: shift, mean: runningMean, variance: runningVariance, epsilon: epsilon, activation: activation, output: output)
  }

  private func apply(
    input: DeviceBuffer, rows: Int, channels: Int, scale: DeviceBuffer, shift: DeviceBuffer, mean: DeviceBuffer, variance: DeviceBuffer,
    epsilon: Float, activation: Activation, output: DeviceBuffer
  ) throws {
    try elementwise(
      "batchnorm_apply_f32", count: rows * channels,
      [.buffer(input), .long(rows * channels), .int(channels), .buffer(scale), .buffer(shift), .buffer(mean), .buffer(variance), .float(epsilon),
       .int(activation.isReLU6 ? 1 : 0), .buffer(output)])
  }

  /// `inputGradient` may be `outputGradient` (in place), as on the CPU.
  public func batchNormBackward(
    input: DeviceBuffer, output: DeviceBuffer, rows: Int, channels: Int, scale: DeviceBuffer, batchMean: DeviceBuffer,
    batchVariance: DeviceBuffer, epsilon: Float, activation: Activation, outputGradient: DeviceBuffer, inputGradient: DeviceBuffer,
    scaleGradient: DeviceBuffer, shiftGradient: DeviceBuffer
  ) throws {
    let relu6 = KernelArgument.int(activation.isReLU6 ? 1 : 0)
    try device.launch(
      "batchnorm_backward_sums", grid: channels, block: reductionBlock,
      [.buffer(input), .buffer(output), .buffer(outputGradient), .int(rows), .int(channels), relu6, .buffer(batchMean), .buffer(batchVariance),
       .float(epsilon), .buffer(scaleGradient), .buffer(shiftGradient)])
    try elementwise(
      "batchnorm_backward_input", count: rows * channels,
      [.buffer(input), .buffer(output), .buffer(outputGradient), .long(rows * channels), .int(rows), .int(channels), relu6, .buffer(scale),
       .buffer(batchMean), .buffer(batchVariance), .float(epsilon), .buffer(shiftGradient), .buffer(scaleGradient), .buffer(inputGradient)])
  }

  public func batchNormInferenceBackward(
    output: DeviceBuffer, rows: Int, channels: Int, scale: DeviceBuffer, runningVariance: DeviceBuffer, epsilon: Float,
    activation: Activation, outputGradient: DeviceBuffer, inputGradient: DeviceBuffer
  ) throws {
    try elementwise(
      "batchnorm_inference_backward", count: rows * channels,
      [.buffer(output), .buffer(outputGradient), .long(rows * channels), .int(channels), .int(activation.isReLU6 ? 1 : 0), .buffer(scale),
       .buffer(runningVariance), .float(epsilon), .buffer(inputGradient)])
  }

  // MARK: Element-wise and pooling

  public func residualForward(
    input: DeviceBuffer, branch: DeviceBuffer, sampleScale: DeviceBuffer?, batch: Int, sampleSize: Int, output: DeviceBuffer
  ) throws {
    try elementwise(
      "residual_forward", count: batch * sampleSize,
      [.buffer(input), .buffer(branch), .buffer(sampleScale), .long(sampleSize), .long(batch * sampleSize), .buffer(output)])
  }

  public func scaleSamples(_ gradient: DeviceBuffer, sampleScale: DeviceBuffer, batch: Int, sampleSize: Int, output: DeviceBuffer) throws {
    try elementwise(
      "scale_samples", count: batch * sampleSize,
      [.buffer(gradient), .buffer(sampleScale), .long(sampleSize), .long(batch * sampleSize), .buffer(output)])
  }

  public func accumulate(_ a: DeviceBuffer, _ b: DeviceBuffer, count: Int) throws {
    try elementwise("accumulate", count: count, [.buffer(a), .buffer(b), .long(count)])
  }

  public func globalAveragePoolForward(input: DeviceBuffer, _ geometry: ImageGeometry, output: DeviceBuffer) throws {
    try elementwise(
      "global_average_pool_forward", count: geometry.batch * geometry.channels,
      [.buffer(input), .int(geometry.batch), .int(geometry.height * geometry.width), .int(geometry.channels), .buffer(output)])
  }

  public func globalAveragePoolBackward(outputGradient: DeviceBuffer, _ geometry: ImageGeometry, inputGradient: DeviceBuffer) throws {
    try elementwise(
      "global_average_pool_backward", count: geometry.count,
      [.buffer(outputGradient), .int(geometry.batch), .int(geometry.height * geometry.width), .int(geometry.channels), .buffer(inputGradient)])
  }

  public func dropoutForward(
    input: DeviceBuffer, count: Int, dropProbability: Float, seed: UInt64, stream: DeviceWord, mask: DeviceBuffer, output: DeviceBuffer
  ) throws {
    try elementwise(
      "dropout_forward", count: count,
      [.buffer(input), .long(count), .float(dropProbability), .uint64(seed), .word(stream), .buffer(mask), .buffer(output)])
  }

  public func dropoutBackward(gradient: DeviceBuffer, count: Int, mask: DeviceBuffer) throws {
    try elementwise("dropout_backward", count: count, [.buffer(gradient), .buffer(mask), .long(count)])
  }

  // MARK: Classifier

  /// output[N, O] = input[N, K] · weight[O, K]ᵀ + bias[O]: one GEMM with a bias epilogue.
  public func linearForward(
    input: DeviceBuffer, batch: Int, inputFeatures: Int, weight: DeviceBuffer, bias: DeviceBuffer, outputFeatures: Int,
    output: DeviceBuffer
  ) throws {
    try gemm(
      transposeA: false, transposeB: true, m: batch, n: outputFeatures, k: inputFeatures, alpha: 1, a: input, lda: inputFeatures, b: weight,
      ldb: inputFeatures, beta: 0, c: output, ldc: outputFeatures, epilogue: .bias, bias: bias)
  }

  public func linearBackward(
    input: DeviceBuffer, batch: Int, inputFeatures: Int, weight: DeviceBuffer, outputFeatures: Int, outputGradient: DeviceBuffer,
    inputGradient: DeviceBuffer, weightGradient: DeviceBuffer, biasGradient: DeviceBuffer
  ) throws {
    try gemm(
      transposeA: true, transposeB: false, m: outputFeatures, n: inputFeatures, k: batch, alpha: 1, a: outputGradient, lda: outputFeatures,
      b: input, ldb: inputFeatures, beta: 0, c: weightGradient, ldc: inputFeatures)
    try device.launch(
      "column_sums", grid: outputFeatures, block: reductionBlock, [.buffer(outputGradient), .int(batch), .int(outputFeatures), .buffer(biasGradient)])
    try gemm(
      transposeA: false, transposeB: false, m: batch, n: inputFeatures, k: outputFeatures, alpha: 1, a: outputGradient, lda: outputFeatures,
      b: weight, ldb: inputFeatures, beta: 0, c: inputGradient, ldc: inputFeatures)
  }

  /// The device buffers of a cross-entropy: the example weights, their total, each
  /// example's share of the loss and the loss itself, sized for a batch once.
  public final class LossWorkspace {
    public let weights, total, shares, loss: DeviceBuffer
    public init(device: CUDADevice, batch: Int) throws {
      (weights, total, shares, loss) = (try device.buffer(floats: batch), try device.buffer(floats: 1), try device.buffer(floats: batch), try device.buffer(floats: 1))
    }
  }

  /// Softmax cross-entropy as `Backend.softmaxCrossEntropy`: writes ∂loss/∂logits and the
  /// loss into `workspace.loss` on the device; nothing is read back here (the caller reads
  /// the loss when it logs it). Labels are int32; soft targets, class weights and the
  /// logit adjustment are device buffers or nil.
  public func softmaxCrossEntropy(
    logits: DeviceBuffer, labels: DeviceBuffer, batch: Int, classes: Int, labelSmoothing: Float = 0, classWeights: DeviceBuffer? = nil,
    logitAdjustment: DeviceBuffer? = nil, focalGamma: Float = 0, softTargets: DeviceBuffer? = nil, logitGradient: DeviceBuffer,
    workspace: LossWorkspace
  ) throws {
    try device.launch(
      "cross_entropy_weights", grid: 1, block: reductionBlock,
      [.buffer(labels), .buffer(softTargets), .buffer(classWeights), .int(batch), .int(classes), .buffer(workspace.weights), .buffer(workspace.total)])
    let warpsPerBlock = 4
    try device.launch(
      "softmax_cross_entropy", grid: (batch + warpsPerBlock - 1) / warpsPerBlock, block: 32 * warpsPerBlock,
      [.buffer(logits), .buffer(labels), .buffer(softTargets), .buffer(logitAdjustment), .buffer(classWeights), .buffer(workspace.total),
       .int(batch), .int(classes), .float(labelSmoothing), .float(focalGamma), .buffer(logitGradient), .buffer(workspace.shares)])
    try device.launch("sum_in_order", grid: 1, block: reductionBlock, [.buffer(workspace.shares), .int(batch), .buffer(workspace.loss)])
  }

  // MARK: Optimizer steps

  /// One SGD step of a parameter (`SGD.step`'s arithmetic). `decay` 0 for parameters that
  /// take none.
  public func sgdStep(
    weight: DeviceBuffer, gradient: DeviceBuffer, velocity: DeviceBuffer, count: Int, learningRate: DeviceWord,
    momentum: DeviceWord, decay: Float, nesterov: Bool
  ) throws {
    try elementwise(
      "sgd_step", count: count,
      [.buffer(weight), .buffer(gradient), .buffer(velocity), .long(count), .word(learningRate), .word(momentum), .float(decay), .int(nesterov ? 1 : 0)])
  }

  /// One AdamW step of a parameter (`Backend.adamWStep`'s arithmetic).
  public func adamWStep(
    weight: DeviceBuffer, gradient: DeviceBuffer, first: DeviceBuffer, second: DeviceBuffer, count: Int, beta1: Float, beta2: Float,
    epsilon: Float, decayFactor: DeviceWord?, stepSize: DeviceWord, rootCorrection2: DeviceWord
  ) throws {
    try elementwise(
      "adamw_step", count: count,
      [.buffer(weight), .buffer(gradient), .buffer(first), .buffer(second), .long(count), .float(beta1), .float(beta2), .float(epsilon),
       .word(decayFactor), .word(stepSize), .word(rootCorrection2)])
  }

  // MARK: The rest of a training step

  public func updateRunningStatistics(
    runningMean: DeviceBuffer, runningVariance: DeviceBuffer, batchMean: DeviceBuffer, batchVariance: DeviceBuffer, channels: Int,
    momentum: Float, unbiasing: Float
  ) throws {
    try elementwise(
      "running_statistics", count: channels,
      [.buffer(runningMean), .buffer(runningVariance), .buffer(batchMean), .buffer(batchVariance), .int(channels), .float(momentum), .float(unbiasing)])
  }

  public func stochasticDepthScales(
    seed: UInt64, stream: DeviceWord, block: Int, batch: Int, dropProbability: Float, output: DeviceBuffer
  ) throws {
    try elementwise(
      "stochastic_depth_scales", count: batch,
      [.uint64(seed), .word(stream), .int(block), .int(batch), .float(dropProbability), .buffer(output)])
  }

  /// Global-norm clipping over `gradients` (with their value counts); `partials` holds a
  /// float per gradient, `norm` receives the norm.
  public func clipGradientNorm(
    _ gradients: [(buffer: DeviceBuffer, count: Int)], maximumNorm: Float, partials: DeviceBuffer, norm: DeviceBuffer
  ) throws {
    for (slot, gradient) in gradients.enumerated() {
      try device.launch(
        "sum_of_squares", grid: 1, block: reductionBlock, [.buffer(gradient.buffer), .long(gradient.count), .buffer(partials), .int(slot)])
    }
    for (slot, gradient) in gradients.enumerated() {
      try elementwise(
        "scale_to_norm", count: gradient.count,
        [.buffer(gradient.buffer), .long(gradient.count), .buffer(partials), .int(gradients.count), .float(maximumNorm), .buffer(norm),
         .int(slot == 0 ? 1 : 0)])
    }
  }

  public func exponentialMovingAverage(shadow: DeviceBuffer, value: DeviceBuffer, count: Int, decay: Float) throws {
    try elementwise("exponential_moving_average", count: count, [.buffer(shadow), .buffer(value), .long(count), .float(decay)])
  }

  // MARK: Batches

  /// A batch from 8-bit images in device memory, as `Backend.assembleImages`.
  public func assembleImages(
    from pixels: DeviceBuffer, plan: DeviceBuffer, batch: Int, height: Int, width: Int, channels: Int, normalization: DeviceBuffer,
    images: DeviceBuffer
  ) throws {
    try elementwise(
      "assemble_images", count: batch * height * width * channels,
      [.buffer(pixels), .buffer(plan), .int(batch), .int(height), .int(width), .int(channels), .buffer(normalization), .buffer(images)])
  }

  // MARK: Precision

  public func floatToBFloat16(_ x: DeviceBuffer, count: Int, output: DeviceBuffer) throws {
    try elementwise("float_to_bfloat16", count: count, [.buffer(x), .long(count), .buffer(output)])
  }

  public func bfloat16ToFloat(_ x: DeviceBuffer, count: Int, output: DeviceBuffer) throws {
    try elementwise("bfloat16_to_float", count: count, [.buffer(x), .long(count), .buffer(output)])
  }
}

extension Activation {
  var isReLU6: Bool {
    if case .relu6 = self { return true }
    return false
  }
}
