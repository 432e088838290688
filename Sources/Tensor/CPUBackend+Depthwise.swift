/// Depthwise 3×3 convolution, NHWC, padding 1: every channel has its own 3×3 filter.
///
/// Napkin math (cifar preset, width 1, batch 128, the 28×28×144 layer): 9 multiply-adds
/// per output value, 14.5 M outputs → 0.26 GFLOP, 2 × 58 MB moved: memory-bound, so the
/// loops vectorise over channels (contiguous in NHWC) and touch each output once.
extension CPUBackend {
  public func depthwiseForward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int, output: Tensor
  ) {
    let (height, width, channels) = (inputGeometry.height, inputGeometry.width, inputGeometry.channels)
    let out = inputGeometry.convolved3x3(stride: stride, channels: channels)
    let source = input.data
    let filters = weight.data
    let destination = output.data
    let vectorEnd = channels - channels % 8
    parallel.forEachChunk(out.batch * out.height, grain: 2) { _, outputRows in
      for outputRow in outputRows {
        let n = outputRow / out.height
        let top = (outputRow % out.height) * stride - 1
        let khRange = max(0, -top)..<min(3, height - top)
        for ow in 0..<out.width {
          let left = ow * stride - 1
          let kwRange = max(0, -left)..<min(3, width - left)
          let result = destination + (outputRow * out.width + ow) * channels
          var c = 0
          while c < vectorEnd {
            var sum = SIMD8<Float>()
            for kh in khRange {
              let row = source + ((n * height + top + kh) * width + left) * channels + c
              let filterRow = filters + kh * 3 * channels + c
              for kw in kwRange {
                sum.addProduct(load8(row + kw * channels), load8(filterRow + kw * channels))
              }
            }
            store8(sum, result + c)
            c += 8
          }
          while c < channels {
            var sum: Float = 0
            for kh in khRange {
              for kw in kwRange {
                sum += source[((n * height + top + kh) * width + left + kw) * channels + c]
                  * filters[(kh * 3 + kw) * channels + c]
              }
            }
            result[c] = sum
            c += 1
          }
        }
      }
    }
  }

  public func depthwiseBackward(
    input: Tensor, _ inputGeometry: ImageGeometry, weight: Tensor, stride: Int,
    outputGradient: Tensor, inputGradient: Tensor, weightGradient: Tensor
  ) {
    let (height, width, channels) = (inputGeometry.height, inputGeometry.width, inputGeometry.channels)
    let out = inputGeometry.convolved3x3(stride: stride, channels: channels)
    let chunks = parallel.chunkCount(out.batch)
    let filterSize = 9 * channels
    // Each chunk of images sums its own weight gradient; the partial sums are added in
    // chunk order afterwards, so the result does not depend on timing.
    let partials = floats(chunks * filterSize)
    let source = input.data
    let filters = weight.data
    let gradient = outputGradient.data
    let destination = inputGradient.data
    let vectorEnd = channels - channels % 8
    parallel.forEachChunk(out.batch) { chunk, images in
      let filterGradient = partials + chunk * filterSize
      for n in images {
        let image = destination + n * height * width * channels
        image.update(repeating: 0, count: height * width * channels)
        for oh in 0..<out.height {
          let top = oh * stride - 1
          let khRange = max(0, -top)..<min(3, height - top)
          for ow in 0..<out.width {
            let left = ow * stride - 1
            let kwRange = max(0, -left)..<min(3, width - left)
            let g = gradient + ((n * out.height + oh) * out.width + ow) * channels
            for kh in khRange {
              for kw in kwRange {
                let offset = ((top + kh) * width + left + kw) * channels
                let pixel = source + n * height * width * channels + offset
                let pixelGradient = image + offset
                let filter = filters + (kh * 3 + kw) * channels
                let filterTapGradient = filterGradient + (kh * 3 + kw) * channels
                var c = 0
                while c < vectorEnd {
                  let gv = load8(g + c)
                  store8(load8(pixelGradient + c).addingProduct(gv, load8(filter + c)), pixelGradient + c)
                  store8(load8(filterTapGradient + c).addingProduct(gv, load8(pixel + c)), filterTapGradient + c)
                  c += 8
                }
                while c < channels {
                  pixelGradient[c] += g[c] * filter[c]
                  filterTapGradient[c] += g[c] * pixel[c]
                  c += 1
                }
              }
            }
          }
        }
      }
    }
    let result = weightGradient.data
    result.update(from: partials, count: filterSize)
    for chunk in 1..<max(chunks, 1) {
      let partial = partials + chunk * filterSize
      for i in 0..<filterSize { result[i] += partial[i] }
    }
  }
}
