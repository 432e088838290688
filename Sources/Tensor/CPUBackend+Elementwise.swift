/// Residual connections, pooling, dropout and the classifier: the cheap operations.
extension CPUBackend {
  public func residualForward(
    input: Tensor, branch: Tensor, sampleScale: Tensor?, batch: Int, sampleSize: Int,
    output: Tensor
  ) {
    let (x, b, y) = (input.data, branch.data, output.data)
    parallel.forEachChunk(batch) { _, samples in
      for n in samples {
        let factor = sampleScale?[n] ?? 1
        let start = n * sampleSize
        for i in start..<(start + sampleSize) { y[i] = x[i] + b[i] * factor }
      }
    }
  }

  public func scaleSamples(
    _ gradient: Tensor, sampleScale: Tensor, batch: Int, sampleSize: Int, output: Tensor
  ) {
    let (g, y) = (gradient.data, output.data)
    parallel.forEachChunk(batch) { _, samples in
      for n in samples {
        let factor = sampleScale[n]
        let start = n * sampleSize
        for i in start..<(start + sampleSize) { y[i] = g[i] * factor }
      }
    }
  }

  public func accumulate(_ a: Tensor, _ b: Tensor, count: Int) {
    let (x, y) = (a.data, b.data)
    parallel.forEachChunk(count, grain: 4096) { _, range in
      for i in range { x[i] += y[i] }
    }
  }

  public func globalAveragePoolForward(input: Tensor, _ geometry: ImageGeometry, output: Tensor) {
    let (x, y) = (input.data, output.data)
    let (pixels, channels) = (geometry.height * geometry.width, geometry.channels)
    let inverse = 1 / Float(pixels)
    parallel.forEachChunk(geometry.batch) { _, samples in
      for n in samples {
        let result = y + n * channels
        result.update(repeating: 0, count: channels)
        for p in 0..<pixels {
          let pixel = x + (n * pixels + p) * channels
          for c in 0..<channels { result[c] += pixel[c] }
        }
        for c in 0..<channels { result[c] *= inverse }
      }
    }
  }

  public func globalAveragePoolBackward(
    outputGradient: Tensor, _ geometry: ImageGeometry, inputGradient: Tensor
  ) {
    let (g, dx) = (outputGradient.data, inputGradient.data)
    let (pixels, channels) = (geometry.height * geometry.width, geometry.channels)
    let inverse = 1 / Float(pixels)
    parallel.forEachChunk(geometry.batch) { _, samples in
      for n in samples {
        let source = g + n * channels
        for p in 0..<pixels {
          let pixel = dx + (n * pixels + p) * channels
          for c in 0..<channels { pixel[c] = source[c] * inverse }
        }
      }
    }
  }

  public func dropoutForward(
    input: Tensor, count: Int, dropProbability: Float, seed: UInt64, stream: DeviceScalar, mask: Tensor,
    output: Tensor
  ) {
    let random = RandomStream(seed: seed, purpose: .dropout, stream: stream.hostBits)
    let keep = 1 / (1 - dropProbability)
    let (x, m, y) = (input.data, mask.data, output.data)
    for i in 0..<count {
      m[i] = random.uniform(at: UInt64(i)) >= dropProbability ? keep : 0
      y[i] = x[i] * m[i]
    }
  }

  public func dropoutBackward(gradient: Tensor, count: Int, mask: Tensor) {
    let (g, m) = (gradient.data, mask.data)
    for i in 0..<count { g[i] *= m[i] }
  }

  public func linearForward(
    input: Tensor, batch: Int, inputFeatures: Int, weight: Tensor, bias: Tensor,
    outputFeatures: Int, output: Tensor
  ) {
    for n in 0..<batch {
      (output.data + n * outputFeatures).update(from: bias.data, count: outputFeatures)
    }
    gemm(
      transposeA: false, transposeB: true, m: batch, n: outputFeatures, k: inputFeatures,
      alpha: 1, a: input.data, lda: inputFeatures, b: weight.data, ldb: inputFeatures, beta: 1,
      c: output.data, ldc: outputFeatures)
  }

  public func linearBackward(
    input: Tensor, batch: Int, inputFeatures: Int, weight: Tensor, outputFeatures: Int,
    outputGradient: Tensor, inputGradient: Tensor, weightGradient: Tensor,
    biasGradient: Tensor
  ) {
    gemm(
      transposeA: true, transposeB: false, m: outputFeatures, n: inputFeatures, k: batch,
      alpha: 1, a: outputGradient.data, lda: outputFeatures, b: input.data, ldb: inputFeatures,
      beta: 0, c: weightGradient.data, ldc: inputFeatures)
    let g = outputGradient.data
    for o in 0..<outputFeatures {
      var sum: Float = 0
      for n in 0..<batch { sum += g[n * outputFeatures + o] }
      biasGradient[o] = sum
    }
    gemm(
      transposeA: false, transposeB: false, m: batch, n: inputFeatures, k: outputFeatures,
      alpha: 1, a: outputGradient.data, lda: outputFeatures, b: weight.data, ldb: inputFeatures,
      beta: 0, c: inputGradient.data, ldc: inputFeatures)
  }
}
