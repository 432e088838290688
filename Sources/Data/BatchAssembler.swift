import Tensor

/// Turns examples of an `ImageDataset` into a normalised float batch [B, H, W, C]:
/// (pixel/255 − mean)/std, augmented when asked.
public final class BatchAssembler {
  public let mean: [Float]
  public let std: [Float]
  let parallel: Parallel
  /// Per channel: x_normalised = pixel · scale + offset (precomputed: assembling a batch
  /// allocates nothing).
  private let scale: [Float]
  private let offset: [Float]
  /// The elastic distortion's blur kernel, for the σ it was made for.
  private var elasticKernel: [Float] = []
  private var elasticSigma = 0.0
  /// Per-thread float images for the affine path, grown once.
  private var warpScratch: UnsafeMutablePointer<Float>?
  private var warpScratchCount = 0

  deinit { warpScratch?.deallocate() }

  private func scratch(_ count: Int) -> UnsafeMutablePointer<Float> {
    if count > warpScratchCount {
      warpScratch?.deallocate()
      warpScratch = .allocate(capacity: count)
      warpScratchCount = count
    }
    return warpScratch!
  }

  public init(mean: [Float], std: [Float], threads: Int) {
    precondition(mean.count == std.count)
    self.mean = mean
    self.std = std
    parallel = Parallel(threads: threads)
    scale = std.map { 1 / (255 * $0) }
    offset = zip(mean, std).map { -$0 / $1 }
  }

  /// The per-channel map of a raw pixel to its normalised value, as a device assembling
  /// batches takes it (`Backend.assembleImages`): scale[C] then offset[C].
  public var normalization: [Float] { scale + offset }

  /// Whether `plan` can describe this augmentation's batches: integer shifts, flips and
  /// erasing (the reference recipe and more), not the affine warp or elastic distortion,
  /// which the host computes.
  public static func canPlan(_ augmentation: Augmentation) -> Bool { !augmentation.needsWarp }

  /// What `assemble` would do to the examples at `indices`, for a device that holds the
  /// images and assembles the batch itself (`Backend.assembleImages`): per example eight
  /// int32, {stored image, dy, dx, flip, erased top, left, height, width (0: none)}, from
  /// the same draws; and the labels. Only for an augmentation `canPlan` accepts.
  public func plan(
    _ dataset: ImageDataset, indices: ArraySlice<Int>, augmentation: Augmentation, seed: UInt64, epoch: Int,
    plan: UnsafeMutablePointer<Int32>, labels: UnsafeMutablePointer<Int32>, fixed: (dy: Int, dx: Int, flip: Bool)? = nil
  ) {
    precondition(Self.canPlan(augmentation), "the affine warp and elastic distortion are assembled on the host")
    let (random, moreRandom) = Self.streams(seed: seed, epoch: epoch)
    for (slot, example) in indices.enumerated() {
      let stored = example % dataset.count
      labels[slot] = dataset.labels[stored]
      let (dy, dx, flip) = fixed ?? augmentation.draw(random: random, example: example)
      let erased = augmentation.erasure(random: moreRandom, example: example, height: dataset.height, width: dataset.width)
      let row = plan + 8 * slot
      row[0] = Int32(stored)
      row[1] = Int32(dy)
      row[2] = Int32(dx)
      row[3] = flip ? 1 : 0
      row[4] = Int32(erased?.0 ?? 0)
      row[5] = Int32(erased?.1 ?? 0)
      row[6] = Int32(erased?.2 ?? 0)
      row[7] = Int32(erased?.3 ?? 0)
    }
  }

  /// An epoch's two augmentation streams, for `assemble` and `plan` alike: the reference
  /// recipe's shifts and flips, and the other transforms' own, so that the shifts and
  /// flips stay the same whatever else is switched on.
  private static func streams(seed: UInt64, epoch: Int) -> (shiftsAndFlips: RandomStream, others: RandomStream) {
    let stream = UInt32(truncatingIfNeeded: epoch)
    return (
      RandomStream(seed: seed, purpose: .augmentation, stream: stream),
      RandomStream(seed: seed, purpose: .augmentation, stream: stream ^ 0x8000_0000)
    )
  }

  /// Fills `images` and `labels` with the examples at `indices`. A pixel shifted in from
  /// outside the image is 0 before normalisation (zero padding). With `fixed`, every
  /// example gets that shift and flip instead of random ones (test-time augmentation).
  public func assemble(
    _ dataset: ImageDataset, indices: ArraySlice<Int>, augmentation: Augmentation, seed: UInt64,
    epoch: Int, images: Tensor, labels: UnsafeMutablePointer<Int32>, fixed: (dy: Int, dx: Int, flip: Bool)? = nil
  ) {
    let (height, width, channels) = (dataset.height, dataset.width, dataset.channels)
    let imageSize = dataset.imageSize
    precondition(channels == scale.count, "the assembler was made for \(scale.count) channels, the data have \(channels)")
    let (random, moreRandom) = Self.streams(seed: seed, epoch: epoch)
    let warping = augmentation.needsWarp
    // Per thread: the raw image, the warped one, and two displacement planes with their
    // blur scratch for elastic distortion.
    let pixelsPerImage = height * width
    let scratchPerThread = 2 * imageSize + 4 * pixelsPerImage
    let threadScratch = warping ? scratch(parallel.threads * scratchPerThread) : nil
    if augmentation.elasticAlpha > 0 && (elasticKernel.isEmpty || elasticSigma != augmentation.elasticSigma) {
      elasticKernel = augmentation.elasticKernel
      elasticSigma = augmentation.elasticSigma
    }
    let kernel = elasticKernel
    let start = indices.startIndex
    dataset.pixels.withUnsafeBufferPointer { pixels in
      scale.withUnsafeBufferPointer { scale in
        offset.withUnsafeBufferPointer { offset in
          parallel.forEachChunk(indices.count, grain: 16) { chunk, range in
            for slot in range {
              // A virtual index i + k·n (a grown class's copy k of example i) reads example
              // i and draws its own augmentation.
              let example = indices[start + slot]
              let stored = example % dataset.count
              labels[slot] = dataset.labels[stored]
              let source = pixels.baseAddress! + stored * imageSize
              let destination = images.data + slot * imageSize
              let (dy, dx, flip) = fixed ?? augmentation.draw(random: random, example: example)
              defer {
                if let (top, left, h, w) = augmentation.erasure(random: moreRandom, example: example, height: height, width: width) {
                  for y in top..<(top + h) { (destination + (y * width + left) * channels).update(repeating: 0, count: w * channels) }
                }
              }
              if warping, let threadScratch {
                let raw = threadScratch + chunk * scratchPerThread
                let warped = raw + imageSize
                for i in 0..<imageSize { raw[i] = Float(source[i]) }
                let warp = augmentation.warp(random: moreRandom, example: example, base: (dy, dx, flip), height: height, width: width)
                var displacement: UnsafeMutablePointer<Float>? = nil
                if augmentation.elasticAlpha > 0 {
                  let field = warped + imageSize
                  kernel.withUnsafeBufferPointer {
                    augmentation.elasticField(
                      random: moreRandom, example: example, height: height, width: width, kernel: $0, field: field,
                      temporary: field + 2 * pixelsPerImage)
                  }
                  displacement = field
                }
                warpImage(raw, into: warped, height: height, width: width, channels: channels, warp: warp, displacement: displacement)
                if augmentation.jitters {
                  let (b, c, s) = augmentation.jitterFactors(random: moreRandom, example: example)
                  jitterColours(warped, pixels: pixelsPerImage, channels: channels, brightness: b, contrast: c, saturation: s)
                }
                for i in 0..<imageSize { destination[i] = warped[i] * scale[i % channels] + offset[i % channels] }
                continue
              }
              for y in 0..<height {
                let sy = y + dy
                for x in 0..<width {
                  let sx = (flip ? width - 1 - x : x) + dx
                  let inside = sy >= 0 && sy < height && sx >= 0 && sx < width
                  for c in 0..<channels {
                    let raw: Float = inside ? Float(source[(sy * width + sx) * channels + c]) : 0
                    destination[(y * width + x) * channels + c] = raw * scale[c] + offset[c]
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
