import Tensor

/// 1×1 convolution = the GEMM [N·H·W, Cin] × [Cin, Cout]. weight: [Cout, Cin].
public final class PointwiseConvolution {
  public let weight: Parameter
  public let inputChannels: Int
  public let outputChannels: Int
  /// [rows, Cout] at the planned capacity.
  public let output: Tensor

  init(name: String, inputChannels: Int, outputChannels: Int, output: Tensor, backend: Backend) {
    self.inputChannels = inputChannels
    self.outputChannels = outputChannels
    weight = Parameter(
      name: name, shape: [outputChannels, inputChannels],
      checkpointShape: [outputChannels, inputChannels, 1, 1], decays: true, backend: backend)
    self.output = output
  }

  func forward(_ input: Tensor, rows: Int, backend: Backend) {
    backend.gemm(
      transposeA: false, transposeB: true, m: rows, n: outputChannels, k: inputChannels,
      alpha: 1, a: input, lda: inputChannels, b: weight.value, ldb: inputChannels,
      beta: 0, c: output, ldc: outputChannels)
  }

  /// weight gradient = gᵀ·x; input gradient = g·W (skipped when nil).
  func backward(input: Tensor, outputGradient: Tensor, inputGradient: Tensor?, rows: Int, backend: Backend) {
    backend.gemm(
      transposeA: true, transposeB: false, m: outputChannels, n: inputChannels, k: rows,
      alpha: 1, a: outputGradient, lda: outputChannels, b: input, ldb: inputChannels,
      beta: 0, c: weight.gradient, ldc: inputChannels)
    guard let inputGradient else { return }
    backend.gemm(
      transposeA: false, transposeB: false, m: rows, n: inputChannels, k: outputChannels,
      alpha: 1, a: outputGradient, lda: outputChannels, b: weight.value,
      ldb: inputChannels, beta: 0, c: inputGradient, ldc: inputChannels)
  }
}

/// Full 3×3 convolution with padding 1 (the stem). weight: [Cout, 3, 3, Cin].
public final class Convolution3x3 {
  public let weight: Parameter
  public let stride: Int
  public let outputChannels: Int
  public let output: Tensor
  let columns: Tensor

  init(name: String, input: ImageGeometry, outputChannels: Int, stride: Int, output: Tensor, backend: Backend) {
    self.stride = stride
    self.outputChannels = outputChannels
    weight = Parameter(
      name: name, shape: [outputChannels, 3, 3, input.channels],
      checkpointShape: [outputChannels, input.channels, 3, 3], decays: true,
      layout: .convolution3x3, backend: backend)
    let out = input.convolved3x3(stride: stride, channels: outputChannels)
    self.output = output
    columns = backend.makeTensor(shape: [out.rows * 9 * input.channels])
  }

  func forward(_ input: Tensor, _ geometry: ImageGeometry, backend: Backend) {
    backend.convolution3x3Forward(
      input: input, geometry, weight: weight.value, stride: stride, output: output,
      outputChannels: outputChannels, columns: columns)
  }

  func backward(_ geometry: ImageGeometry, outputGradient: Tensor, inputGradient: Tensor?, backend: Backend) {
    backend.convolution3x3Backward(
      inputGradient: inputGradient, geometry, weight: weight.value, stride: stride,
      outputGradient: outputGradient, outputChannels: outputChannels, columns: columns,
      weightGradient: weight.gradient)
  }
}

/// Depthwise 3×3 convolution with padding 1. weight: [3, 3, C].
public final class DepthwiseConvolution {
  public let weight: Parameter
  public let stride: Int
  public let output: Tensor

  init(name: String, input: ImageGeometry, stride: Int, output: Tensor, backend: Backend) {
    self.stride = stride
    weight = Parameter(
      name: name, shape: [3, 3, input.channels], checkpointShape: [input.channels, 1, 3, 3],
      decays: true, layout: .depthwise, backend: backend)
    self.output = output
  }

  func forward(_ input: Tensor, _ geometry: ImageGeometry, backend: Backend) {
    backend.depthwiseForward(input: input, geometry, weight: weight.value, stride: stride, output: output)
  }

  func backward(input: Tensor, _ geometry: ImageGeometry, outputGradient: Tensor, inputGradient: Tensor, backend: Backend) {
    backend.depthwiseBackward(
      input: input, geometry, weight: weight.value, stride: stride,
      outputGradient: outputGradient, inputGradient: inputGradient, weightGradient: weight.gradient)
  }
}

/// Batch normalisation (PyTorch's defaults: ε = 1e-5, momentum 0.1, running variance
/// updated with the unbiased batch variance) followed by an activation.
public final class BatchNormalization {
  public let scale: Parameter
  public let shift: Parameter
  public let runningMean: Buffer
  public let runningVariance: Buffer
  /// PyTorch's num_batches_tracked.
  public var batchesTracked: Int64 = 0
  public let channels: Int
  public let activation: Activation
  public let output: Tensor
  public let prefix: String
  let batchMean: Tensor
  let batchVariance: Tensor
  static let epsilon: Float = 1e-5
  static let momentum: Float = 0.1

  /// `output` may be the input tensor itself in inference-only models (normalised in place).
  init(name prefix: String, channels: Int, activation: Activation, output: Tensor, backend: Backend) {
    self.prefix = prefix
    self.channels = channels
    self.activation = activation
    scale = Parameter(name: prefix + ".weight", shape: [channels], decays: false, backend: backend)
    shift = Parameter(name: prefix + ".bias", shape: [channels], decays: false, backend: backend)
    runningMean = Buffer(name: prefix + ".running_mean", count: channels, backend: backend)
    runningVariance = Buffer(name: prefix + ".running_var", count: channels, backend: backend)
    self.output = output
    batchMean = backend.makeTensor(shape: [channels])
    batchVariance = backend.makeTensor(shape: [channels])
    backend.fill(scale.value, with: 1)
    backend.fill(runningVariance.value, with: 1)
  }

  func forward(_ input: Tensor, rows: Int, training: Bool, backend: Backend) {
    if training {
      backend.batchNormTrainingForward(
        input: input, rows: rows, channels: channels, scale: scale.value, shift: shift.value,
        epsilon: Self.epsilon, activation: activation, output: output, batchMean: batchMean,
        batchVariance: batchVariance)
      backend.updateRunningStatistics(
        runningMean: runningMean.value, runningVariance: runningVariance.value, batchMean: batchMean, batchVariance: batchVariance,
        channels: channels, momentum: Self.momentum, unbiasing: Float(rows) / Float(max(rows - 1, 1)))
      batchesTracked += 1
    } else {
      backend.batchNormInferenceForward(
        input: input, rows: rows, channels: channels, scale: scale.value, shift: shift.value,
        runningMean: runningMean.value, runningVariance: runningVariance.value,
        epsilon: Self.epsilon, activation: activation, output: output)
    }
  }

  /// `inputGradient` may be `outputGradient` (computed in place).
  /// `training: false`: the gradient of the evaluation-mode forward (running statistics
  /// held constant; no parameter gradients), for explanations.
  func backward(input: Tensor, outputGradient: Tensor, inputGradient: Tensor, rows: Int, training: Bool = true, backend: Backend) {
    guard training else {
      return backend.batchNormInferenceBackward(
        output: output, rows: rows, channels: channels, scale: scale.value, runningVariance: runningVariance.value,
        epsilon: Self.epsilon, activation: activation, outputGradient: outputGradient, inputGradient: inputGradient)
    }
    backend.batchNormBackward(
      input: input, output: output, rows: rows, channels: channels, scale: scale.value,
      batchMean: batchMean, batchVariance: batchVariance, epsilon: Self.epsilon,
      activation: activation, outputGradient: outputGradient, inputGradient: inputGradient,
      scaleGradient: scale.gradient, shiftGradient: shift.gradient)
  }
}

/// Fully connected layer: output[N, O] = input[N, K]·Wᵀ + b.
public final class Linear {
  public let weight: Parameter
  public let bias: Parameter
  public let inputFeatures: Int
  public let outputFeatures: Int
  public let output: Tensor

  init(name: String, inputFeatures: Int, outputFeatures: Int, capacity: Int, backend: Backend) {
    self.inputFeatures = inputFeatures
    self.outputFeatures = outputFeatures
    weight = Parameter(name: name + ".weight", shape: [outputFeatures, inputFeatures], decays: true, backend: backend)
    bias = Parameter(name: name + ".bias", shape: [outputFeatures], decays: false, backend: backend)
    output = backend.makeTensor(shape: [capacity, outputFeatures])
  }

  func forward(_ input: Tensor, batch: Int, backend: Backend) {
    backend.linearForward(
      input: input, batch: batch, inputFeatures: inputFeatures, weight: weight.value,
      bias: bias.value, outputFeatures: outputFeatures, output: output)
  }

  func backward(input: Tensor, outputGradient: Tensor, inputGradient: Tensor, batch: Int, backend: Backend) {
    backend.linearBackward(
      input: input, batch: batch, inputFeatures: inputFeatures, weight: weight.value,
      outputFeatures: outputFeatures, outputGradient: outputGradient,
      inputGradient: inputGradient, weightGradient: weight.gradient, biasGradient: bias.gradient)
  }
}
