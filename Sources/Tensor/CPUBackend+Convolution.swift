/// The stem's full 3×3 convolution as im2col + GEMM: the input has 1–3 channels, so the
/// patch matrix is small ([N·Ho·Wo, 9·Cin]) and the GEMM does the arithmetic.
extension CPUBackend {
  public func convolution3x3Forward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int,
    output: Tensor, outputChannels: Int, columns: Tensor
  ) {
    let out = inputGeometry.convolved3x3(stride: stride, channels: outputChannels)
    let patch = 9 * inputGeometry.channels
    precondition(columns.capacity >= out.rows * patch, "im2col scratch too small")
    let (height, width, channels) = (inputGeometry.height, inputGeometry.width, inputGeometry.channels)
    let source = input.data
    let columnData = columns.data
    // columns[row, (kh·3 + kw)·Cin + ci] = input[n, oh·s − 1 + kh, ow·s − 1 + kw, ci] or 0.
    parallel.forEachChunk(out.batch * out.height, grain: 4) { _, outputRows in
      for outputRow in outputRows {
        let n = outputRow / out.height
        let oh = outputRow % out.height
        for ow in 0..<out.width {
          let destination = columnData + (outputRow * out.width + ow) * patch
          for kh in 0..<3 {
            let ih = oh * stride - 1 + kh
            for kw in 0..<3 {
              let iw = ow * stride - 1 + kw
              let tap = destination + (kh * 3 + kw) * channels
              if ih < 0 || ih >= height || iw < 0 || iw >= width {
                tap.update(repeating: 0, count: channels)
              } else {
                tap.update(from: source + ((n * height + ih) * width + iw) * channels, count: channels)
              }
            }
          }
        }
      }
    }
    // output[M, Cout] = columns[M, 9·Cin] · weight[Cout, 9·Cin]ᵀ
    gemm(
      transposeA: false, transposeB: true, m: out.rows, n: outputChannels, k: patch, alpha: 1,
      a: columns.data, lda: patch, b: weight.data, ldb: patch, beta: 0, c: output.data,
      ldc: outputChannels)
  }

  public func convolution3x3Backward(
    inputGradient: Tensor?, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int,
    outputGradient: Tensor, outputChannels: Int, columns: Tensor, weightGradient: Tensor
  ) {
    let out = inputGeometry.convolved3x3(stride: stride, channels: outputChannels)
    let patch = 9 * inputGeometry.channels
    // weightGradient[Cout, 9·Cin] = outputGradient[M, Cout]ᵀ · columns[M, 9·Cin]
    gemm(
      transposeA: true, transposeB: false, m: outputChannels, n: patch, k: out.rows, alpha: 1,
      a: outputGradient.data, lda: outputChannels, b: columns.data, ldb: patch, beta: 0,
      c: weightGradient.data, ldc: patch)
    guard let inputGradient else { return }
    // The patches are no longer needed: their gradient overwrites them, then col2im adds
    // every patch entry back to the pixel it came from.
    gemm(
      transposeA: false, transposeB: false, m: out.rows, n: patch, k: outputChannels, alpha: 1,
      a: outputGradient.data, lda: outputChannels, b: weight.data, ldb: patch, beta: 0,
      c: columns.data, ldc: patch)
    let (height, width, channels) = (inputGeometry.height, inputGeometry.width, inputGeometry.channels)
    let columnData = columns.data
    let destination = inputGradient.data
    // One chunk per group of images: an image's pixels receive only its own patches.
    parallel.forEachChunk(out.batch) { _, images in
      for n in images {
        let image = destination + n * height * width * channels
        image.update(repeating: 0, count: height * width * channels)
        for oh in 0..<out.height {
          for ow in 0..<out.width {
            let source = columnData + ((n * out.height + oh) * out.width + ow) * patch
            for kh in 0..<3 {
              let ih = oh * stride - 1 + kh
              if ih < 0 || ih >= height { continue }
              for kw in 0..<3 {
                let iw = ow * stride - 1 + kw
                if iw < 0 || iw >= width { continue }
                let pixel = image + (ih * width + iw) * channels
                let tap = source + (kh * 3 + kw) * channels
                for c in 0..<channels { pixel[c] += tap[c] }
              }
            }
          }
        }
      }
    }
  }
}
