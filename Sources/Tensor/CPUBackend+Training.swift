#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// What a training step does besides the layers: running statistics, stochastic depth's
/// draws, the optimizer steps, gradient clipping and the weight average. The arithmetic is
/// written as the CUDA kernels write it (Sources/CUDA/Kernels/optimizer.cu, reduce.cu,
/// training.cu), operation for operation.
extension CPUBackend {
  public func updateRunningStatistics(
    runningMean: Tensor, runningVariance: Tensor, batchMean: Tensor, batchVariance: Tensor, channels: Int, momentum: Float,
    unbiasing: Float
  ) {
    let (mean, variance, m, v) = (runningMean.data, runningVariance.data, batchMean.data, batchVariance.data)
    for c in 0..<channels {
      mean[c] = (1 - momentum) * mean[c] + momentum * m[c]
      variance[c] = (1 - momentum) * variance[c] + momentum * v[c] * unbiasing
    }
  }

  public func stochasticDepthScales(seed: UInt64, stream: DeviceScalar, block: Int, batch: Int, dropProbability: Float, output: Tensor) {
    let random = RandomStream(seed: seed, purpose: .stochasticDepth, stream: stream.hostBits)
    let keep = 1 / (1 - dropProbability)
    for n in 0..<batch {
      output[n] = random.uniform(at: UInt64(block) << 32 | UInt64(n)) >= dropProbability ? keep : 0
    }
  }

  public func sgdStep(
    weight: Tensor, gradient: Tensor, velocity: Tensor, count: Int, learningRate: DeviceScalar, momentum: DeviceScalar, decay: Float,
    nesterov: Bool
  ) {
    let (w, g, v) = (weight.data, gradient.data, velocity.data)
    let (learningRate, momentum) = (learningRate.hostValue, momentum.hostValue)
    for i in 0..<count {
      let decayed = g[i] + decay * w[i]
      let updated = momentum * v[i] + decayed
      v[i] = updated
      w[i] -= learningRate * (nesterov ? decayed + momentum * updated : updated)
    }
  }

  public func adamWStep(
    weight: Tensor, gradient: Tensor, first: Tensor, second: Tensor, count: Int, beta1: Float, beta2: Float, epsilon: Float,
    decayFactor: DeviceScalar?, stepSize: DeviceScalar, rootCorrection2: DeviceScalar
  ) {
    let (w, g, m, v) = (weight.data, gradient.data, first.data, second.data)
    let (decayFactor, stepSize, rootCorrection2) = (decayFactor?.hostValue ?? 1, stepSize.hostValue, rootCorrection2.hostValue)
    for i in 0..<count {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i]
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
      w[i] = w[i] * decayFactor - stepSize * m[i] / (v[i].squareRoot() / rootCorrection2 + epsilon)
    }
  }

  public func clipGradientNorm(_ gradients: [Tensor], maximumNorm: Float, norm: Tensor) {
    // Each gradient's sum of squares in float, in index order; the total in double.
    var sumOfSquares = 0.0
    for gradient in gradients {
      let g = gradient.data
      var partial: Float = 0
      for i in 0..<gradient.capacity { partial += g[i] * g[i] }
      sumOfSquares += Double(partial)
    }
    let total = sumOfSquares.squareRoot()
    norm[0] = Float(total)
    let factor = Float(Double(maximumNorm) / (total + 1e-6))
    guard factor < 1 else { return }
    for gradient in gradients {
      let g = gradient.data
      for i in 0..<gradient.capacity { g[i] *= factor }
    }
  }

  public func exponentialMovingAverage(shadow: Tensor, value: Tensor, count: Int, decay: Float) {
    let (s, v) = (shadow.data, value.data)
    for i in 0..<count { s[i] = decay * s[i] + (1 - decay) * v[i] }
  }
}
