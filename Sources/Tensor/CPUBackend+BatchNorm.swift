/// Batch normalisation over the rows of an [N·H·W, C] matrix, fused with its activation.
///
/// Sums are taken per chunk of rows in float over blocks of `blockRows` rows, then added
/// in double: the float error stays at a block's worth and the totals over 10⁵ rows do
/// not drift. Chunks are combined in order, so the statistics are bit-reproducible.
private let blockRows = 64

/// ∂L/∂(pre-activation) for eight channels: ReLU6 passes the gradient only where its
/// output is strictly inside (0, 6), as PyTorch's hardtanh does.
/// The constants are passed in: built inside the helper, they were rebuilt on every call
/// and made batch-norm backward four times slower.
@inline(__always)
private func activationGradient(
  _ gradient: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>, masked: Bool, zero: SIMD8<Float>, six: SIMD8<Float>
) -> SIMD8<Float> {
  var g = load8(gradient)
  if masked {
    let activated = load8(output)
    g.replace(with: zero, where: (activated .<= zero) .| (activated .>= six))
  }
  return g
}

extension CPUBackend {
  /// Per-channel sums Σa·b and Σa (b = nil: Σa², Σa) over rows, with `transform` applied
  /// to a first. Returns a pointer to [first sums C | second sums C] in doubles.
  @inline(__always)
  private func columnSums(
    rows: Int, channels: Int, _ body: (_ range: Range<Int>, _ first: UnsafeMutablePointer<Float>, _ second: UnsafeMutablePointer<Float>) -> Void
  ) -> UnsafeMutablePointer<Double> {
    let chunks = parallel.chunkCount(rows, grain: blockRows)
    let totals = doubles(chunks * 2 * channels)
    let blocks = floats(chunks * 2 * channels)
    parallel.forEachChunk(rows, grain: blockRows) { chunk, range in
      let first = blocks + chunk * 2 * channels
      let second = first + channels
      let firstTotal = totals + chunk * 2 * channels
      let secondTotal = firstTotal + channels
      var start = range.lowerBound
      while start < range.upperBound {
        let end = min(start + blockRows, range.upperBound)
        first.update(repeating: 0, count: 2 * channels)
        body(start..<end, first, second)
        for c in 0..<channels {
          firstTotal[c] += Double(first[c])
          secondTotal[c] += Double(second[c])
        }
        start = end
      }
    }
    for chunk in 1..<max(chunks, 1) {
      let partial = totals + chunk * 2 * channels
      for i in 0..<(2 * channels) { totals[i] += partial[i] }
    }
    return totals
  }

  public func batchNormTrainingForward(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor, epsilon: Float,
    activation: Activation, output: Tensor, batchMean: Tensor, batchVariance: Tensor
  ) {
    let x = input.data
    let vectorEnd = channels - channels % 8
    let sums = columnSums(rows: rows, channels: channels) { range, sum, sumOfSquares in
      for row in range {
        let values = x + row * channels
        var c = 0
        while c < vectorEnd {
          let v = load8(values + c)
          store8(load8(sum + c) + v, sum + c)
          store8(load8(sumOfSquares + c).addingProduct(v, v), sumOfSquares + c)
          c += 8
        }
        while c < channels {
          sum[c] += values[c]
          sumOfSquares[c] += values[c] * values[c]
          c += 1
        }
      }
    }
    for c in 0..<channels {
      let mean = sums[c] / Double(rows)
      batchMean[c] = Float(mean)
      let variance = sums[channels + c] / Double(rows) - mean * mean
      // E[x²] − E[x]² from float sums keeps ~1e-7·(μ/σ)² of the variance as error: 1–3 %
      // at μ/σ = 300, all of it at 1000. Where μ/σ > 10 (error above ~1e-5), the channel's
      // variance is taken again from its deviations, in double: rare, so the common case
      // pays nothing (and keeps its bits: PyTorchParityTests flips ReLU6 masks under 1e-5
      // changes of the statistics).
      if mean * mean > 100 * max(variance, 0) {
        var squares = 0.0
        for row in 0..<rows {
          let deviation = Double(x[row * channels + c]) - mean
          squares += deviation * deviation
        }
        batchVariance[c] = Float(squares / Double(rows))
      } else {
        batchVariance[c] = Float(max(variance, 0))
      }
    }
    normalize(
      input: input, rows: rows, channels: channels, scale: scale, shift: shift, mean: batchMean,
      variance: batchVariance, epsilon: epsilon, activation: activation, output: output)
  }

  public func batchNormInferenceForward(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor,
    runningMean: Tensor, runningVariance: Tensor, epsilon: Float, activation: Activation,
    output: Tensor
  ) {
    normalize(
      input: input, rows: rows, channels: channels, scale: scale, shift: shift,
      mean: runningMean, variance: runningVariance, epsilon: epsilon, activation: activation,
      output: output)
  }

  public func batchNormInferenceBackward(
    output: Tensor, rows: Int, channels: Int, scale: Tensor, runningVariance: Tensor, epsilon: Float,
    activation: Activation, outputGradient: Tensor, inputGradient: Tensor
  ) {
    let factors = (0..<channels).map { scale[$0] / (runningVariance[$0] + epsilon).squareRoot() }
    let (y, dy, dx) = (output.data, outputGradient.data, inputGradient.data)
    let masked = activation == .relu6
    parallel.forEachChunk(rows, grain: 256) { _, range in
      for row in range {
        for c in 0..<channels {
          let i = row * channels + c
          dx[i] = masked && (y[i] <= 0 || y[i] >= 6) ? 0 : dy[i] * factors[c]
        }
      }
    }
  }

  /// output = activation(x · a + b) with a = γ/√(σ²+ε), b = β − μ·a per channel.
  private func normalize(
    input: Tensor, rows: Int, channels: Int, scale: Tensor, shift: Tensor, mean: Tensor,
    variance: Tensor, epsilon: Float, activation: Activation, output: Tensor
  ) {
    let coefficients = floats(2 * channels)
    for c in 0..<channels {
      let a = scale[c] / (variance[c] + epsilon).squareRoot()
      coefficients[c] = a
      coefficients[channels + c] = shift[c] - mean[c] * a
    }
    let multiplier = UnsafePointer(coefficients)
    let offset = UnsafePointer(coefficients + channels)
    let x = input.data
    let y = output.data
    let vectorEnd = channels - channels % 8
    let clamp = activation == .relu6
    let zero = SIMD8<Float>(repeating: 0)
    let six = SIMD8<Float>(repeating: 6)
    parallel.forEachChunk(rows, grain: blockRows) { _, range in
      for row in range {
        let source = x + row * channels
        let destination = y + row * channels
        var c = 0
        while c < vectorEnd {
          var v = load8(offset + c).addingProduct(load8(source + c), load8(multiplier + c))
          if clamp {
            // Masks, not `clamped`: that goes through an unspecialised generic in the
            // standard library and cost a fifth of a training step.
            v.replace(with: zero, where: v .< zero)
            v.replace(with: six, where: v .> six)
          }
          store8(v, destination + c)
          c += 8
        }
        while c < channels {
          var v = source[c] * multiplier[c] + offset[c]
          if clamp { v = min(max(v, 0), 6) }
          destination[c] = v
          c += 1
        }
      }
    }
  }

  /// With g = ∂L/∂y masked by the activation, x̂ = (x − μ)/σ and A = γ/σ:
  ///   ∂L/∂γ = Σ g·x̂,  ∂L/∂β = Σ g,
  ///   ∂L/∂x = A·(g − mean(g) − x̂·mean(g·x̂)), which is linear in (g, x − μ) per channel:
  ///   ∂L/∂x = A·g + kₓ·(x − μ) + k₀ with kₓ = −A·mean(g·x̂)/σ, k₀ = −A·mean(g).
  /// Centred on μ, as the GPU kernel is: Σg·x − μ·Σg cancels when |μ| ≫ σ, and a last-bit
  /// change of μ moved a gradient by 3 % (PyTorchParityTests).
  public func batchNormBackward(
    input: Tensor, output: Tensor, rows: Int, channels: Int, scale: Tensor,
    batchMean: Tensor, batchVariance: Tensor, epsilon: Float, activation: Activation,
    outputGradient: Tensor, inputGradient: Tensor, scaleGradient: Tensor,
    shiftGradient: Tensor
  ) {
    let x = input.data
    let y = output.data
    let dy = outputGradient.data
    let mu = UnsafePointer(batchMean.data)
    let vectorEnd = channels - channels % 8
    let masked = activation == .relu6
    let zero = SIMD8<Float>(repeating: 0)
    let six = SIMD8<Float>(repeating: 6)
    // Σg and Σg·(x − μ) over the rows.
    let sums = columnSums(rows: rows, channels: channels) { range, sumG, sumGX in
      for row in range {
        let offset = row * channels
        var c = 0
        while c < vectorEnd {
          let g = activationGradient(dy + offset + c, output: y + offset + c, masked: masked, zero: zero, six: six)
          store8(load8(sumG + c) + g, sumG + c)
          store8(load8(sumGX + c).addingProduct(g, load8(x + offset + c) - load8(mu + c)), sumGX + c)
          c += 8
        }
        while c < channels {
          var g = dy[offset + c]
          if masked && (y[offset + c] <= 0 || y[offset + c] >= 6) { g = 0 }
          sumG[c] += g
          sumGX[c] += g * (x[offset + c] - mu[c])
          c += 1
        }
      }
    }
    let coefficients = floats(3 * channels)
    let count = Double(rows)
    for c in 0..<channels {
      let inverseStd = 1 / (Double(batchVariance[c]) + Double(epsilon)).squareRoot()
      let sumG = sums[c]
      let sumGXHat = sums[channels + c] * inverseStd
      scaleGradient[c] = Float(sumGXHat)
      shiftGradient[c] = Float(sumG)
      let a = Double(scale[c]) * inverseStd
      let kx = -a * (sumGXHat / count) * inverseStd
      coefficients[c] = Float(a)
      coefficients[channels + c] = Float(kx)
      coefficients[2 * channels + c] = Float(-a * sumG / count)
    }
    let kg = UnsafePointer(coefficients)
    let kx = UnsafePointer(coefficients + channels)
    let k0 = UnsafePointer(coefficients + 2 * channels)
    let dx = inputGradient.data
    parallel.forEachChunk(rows, grain: blockRows) { _, range in
      for row in range {
        let offset = row * channels
        var c = 0
        while c < vectorEnd {
          let g = activationGradient(dy + offset + c, output: y + offset + c, masked: masked, zero: zero, six: six)
          let value = load8(k0 + c).addingProduct(load8(kx + c), load8(x + offset + c) - load8(mu + c))
            .addingProduct(load8(kg + c), g)
          store8(value, dx + offset + c)
          c += 8
        }
        while c < channels {
          var g = dy[offset + c]
          if masked && (y[offset + c] <= 0 || y[offset + c] >= 6) { g = 0 }
          dx[offset + c] = kg[c] * g + kx[c] * (x[offset + c] - mu[c]) + k0[c]
          c += 1
        }
      }
    }
  }
}
