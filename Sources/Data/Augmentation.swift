import Files
import Foundation
import Tensor

/// Training-time augmentation of 8-bit images, drawn per (seed, epoch, example) so that a
/// batch is the same wherever and whenever it is assembled.
///
/// The reference recipe is `shift` + `horizontalFlip` (torchvision's RandomCrop(size,
/// padding: shift) and RandomHorizontalFlip): integer shifts with zero padding. Rotation,
/// scale, shear and vertical flips add one affine warp with bilinear sampling (zero
/// outside the image); random erasing (Zhong et al. 2020) then blanks a rectangle.
public struct Augmentation: Codable, Equatable, Sendable {
  /// Maximum shift in pixels in each direction (the padding).
  public var shift: Int
  /// Probability of a left-right flip.
  public var horizontalFlip: Double
  /// Probability of an up-down flip.
  public var verticalFlip: Double
  /// Maximum rotation in degrees (uniform in ±rotation).
  public var rotation: Double
  /// Maximum relative scale change (uniform in 1 ± scale).
  public var scale: Double
  /// Maximum shear in degrees along x (uniform in ±shear).
  public var shear: Double
  /// Probability of erasing one rectangle of 2–33 % of the image (aspect 0.3–3.3) to the
  /// mean (0 after normalisation).
  public var erasing: Double
  /// Elastic distortion (Simard et al. 2003): α, the displacement scale in pixels (0: off).
  public var elasticAlpha: Double
  /// Elastic distortion: σ of the Gaussian that smooths the random displacement field.
  public var elasticSigma: Double
  /// Random resized crop (torchvision's `RandomResizedCrop(size, scale=(a, 1))`, the
  /// photo recipes' first transform): the smallest share `a` of the image's area a crop
  /// keeps, the crop's aspect ratio log-uniform in 3/4…4/3, resized back to the full size
  /// (bilinear). 0: off.
  public var resizedCrop: Double
  /// Colour jitter (torchvision's `ColorJitter(brightness, contrast, saturation)`): each
  /// factor uniform in [max(0, 1 − j), 1 + j], applied in that order to the raw pixels,
  /// clamped to 0…255 after each. 0: off. Saturation needs colour (three channels).
  public var brightness: Double
  public var contrast: Double
  public var saturation: Double

  public init(
    shift: Int = 0, horizontalFlip: Double = 0, verticalFlip: Double = 0, rotation: Double = 0, scale: Double = 0,
    shear: Double = 0, erasing: Double = 0, elasticAlpha: Double = 0, elasticSigma: Double = 4, resizedCrop: Double = 0,
    brightness: Double = 0, contrast: Double = 0, saturation: Double = 0
  ) {
    self.resizedCrop = resizedCrop
    self.brightness = brightness
    self.contrast = contrast
    self.saturation = saturation
    self.elasticAlpha = elasticAlpha
    self.elasticSigma = elasticSigma
    self.shift = shift
    self.horizontalFlip = horizontalFlip
    self.verticalFlip = verticalFlip
    self.rotation = rotation
    self.scale = scale
    self.shear = shear
    self.erasing = erasing
  }

  public static let none = Augmentation()
  public var isIdentity: Bool { self == .none }
  /// Whether the float path is needed: a warp (affine, crop, elastic) or colour jitter
  /// (otherwise integer shifts and flips suffice).
  var needsWarp: Bool {
    verticalFlip > 0 || rotation != 0 || scale != 0 || shear != 0 || elasticAlpha > 0 || resizedCrop > 0 || jitters
  }
  var jitters: Bool { brightness > 0 || contrast > 0 || saturation > 0 }

  enum CodingKeys: String, CodingKey {
    case shift, horizontalFlip, verticalFlip, rotation, scale, shear, erasing, elasticAlpha, elasticSigma
    case resizedCrop, brightness, contrast, saturation
  }

  /// Reads configurations saved before the photo transforms existed (off there).
  public init(from decoder: Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    func value(_ key: CodingKeys) throws -> Double { try container.decodeIfPresent(Double.self, forKey: key) ?? 0 }
    self.init(
      shift: try container.decode(Int.self, forKey: .shift), horizontalFlip: try value(.horizontalFlip),
      verticalFlip: try value(.verticalFlip), rotation: try value(.rotation), scale: try value(.scale), shear: try value(.shear),
      erasing: try value(.erasing), elasticAlpha: try value(.elasticAlpha),
      elasticSigma: try container.decodeIfPresent(Double.self, forKey: .elasticSigma) ?? 4, resizedCrop: try value(.resizedCrop),
      brightness: try value(.brightness), contrast: try value(.contrast), saturation: try value(.saturation))
  }

  /// The largest shift, in pixels: past any image this tool trains on, and small enough
  /// that the draw's span (2·shift + 1) stays a 32-bit number.
  public static let maximumShift = 1024

  /// Checks the ranges, naming the setting.
  public func validate() throws {
    func check(_ ok: Bool, _ message: String) throws { if !ok { throw DataError(file: "augmentation", message) } }
    try check((0...Self.maximumShift).contains(shift), "shift must be in 0…\(Self.maximumShift) pixels, got \(shift)")
    for (name, p) in [("horizontal flip", horizontalFlip), ("vertical flip", verticalFlip), ("erasing", erasing)] {
      try check((0...1).contains(p), "\(name) probability must be in [0, 1], got \(p)")
    }
    try check((0..<180).contains(abs(rotation)), "rotation must be below 180°, got \(rotation)")
    try check((0..<1).contains(scale), "scale must be in [0, 1), got \(scale)")
    try check((0..<80).contains(abs(shear)), "shear must be below 80°, got \(shear)")
    try check(
      elasticAlpha.isFinite && elasticSigma.isFinite && elasticAlpha >= 0 && elasticSigma > 0,
      "elastic α must be a number ≥ 0 and σ a number > 0, got α \(elasticAlpha), σ \(elasticSigma)")
    try check(resizedCrop == 0 || (resizedCrop > 0 && resizedCrop <= 1), "the resized crop's smallest area share must be in (0, 1] (0: off), got \(resizedCrop)")
    for (name, j) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)] {
      try check(j.isFinite && j >= 0 && j <= 10, "\(name) jitter must be in 0…10 (the factor's spread around 1), got \(j)")
    }
  }

  /// The random resized crop of one example, in source pixels: (top, left, height, width),
  /// as torchvision's `RandomResizedCrop.get_params` draws it: up to ten tries of an area
  /// share in `resizedCrop`…1 and an aspect log-uniform in 3/4…4/3 that fit, else the
  /// central crop of the aspect clamped to that range.
  func crop(random: RandomStream, example: Int, height: Int, width: Int) -> (Double, Double, Double, Double)? {
    guard resizedCrop > 0 else { return nil }
    func unit(_ word: UInt32) -> Double { Double(word) / 4_294_967_296.0 }
    let area = Double(height * width)
    for attempt in 0..<10 {
      let bits = random.bits(at: UInt64(example) | UInt64(0x10 + attempt) << 56)
      let target = area * (resizedCrop + unit(bits.0) * (1 - resizedCrop))
      let aspect = exp(log(3.0 / 4) + unit(bits.1) * (log(4.0 / 3) - log(3.0 / 4)))
      let w = (target * aspect).squareRoot().rounded(), h = (target / aspect).squareRoot().rounded()
      guard w >= 1, h >= 1, w <= Double(width), h <= Double(height) else { continue }
      let top = Double(Int((UInt64(bits.2) * UInt64(height - Int(h) + 1)) >> 32))
      let left = Double(Int((UInt64(bits.3) * UInt64(width - Int(w) + 1)) >> 32))
      return (top, left, h, w)
    }
    let ratio = Double(width) / Double(height)
    let (w, h): (Double, Double) =
      ratio < 3.0 / 4 ? (Double(width), (Double(width) / (3.0 / 4)).rounded())
      : ratio > 4.0 / 3 ? ((Double(height) * 4 / 3).rounded(), Double(height)) : (Double(width), Double(height))
    return (((Double(height) - h) / 2).rounded(.down), ((Double(width) - w) / 2).rounded(.down), h, w)
  }

  /// The colour jitter factors of one example: (brightness, contrast, saturation), 1 where off.
  func jitterFactors(random: RandomStream, example: Int) -> (Float, Float, Float) {
    let bits = random.bits(at: UInt64(example) | UInt64(0x20) << 56)
    func factor(_ spread: Double, _ word: UInt32) -> Float {
      guard spread > 0 else { return 1 }
      let low = max(0, 1 - spread)
      return Float(low + Double(word) / 4_294_967_296.0 * (1 + spread - low))
    }
    return (factor(brightness, bits.0), factor(contrast, bits.1), factor(saturation, bits.2))
  }

  /// The reference recipe's draw of one example: (dy, dx, flip). Kept on its own stream
  /// so that adding other transforms does not change these.
  @inline(__always)
  func draw(random: RandomStream, example: Int) -> (dy: Int, dx: Int, flip: Bool) {
    if shift == 0 && horizontalFlip == 0 { return (0, 0, false) }
    let bits = random.bits(at: UInt64(example))
    let span = UInt32(2 * shift + 1)
    let dy = Int(bits.0 % span) - shift
    let dx = Int(bits.1 % span) - shift
    let flip = Double(bits.2 >> 8) / 16_777_216.0 < horizontalFlip
    return (dy, dx, flip)
  }

  /// Maps output pixel (y, x) to input coordinates: src = A·(dst − centre) + centre + t.
  public struct Warp: Equatable, Sendable {
    public var a: (Double, Double, Double, Double)
    public var translation: (Double, Double)

    public init(a: (Double, Double, Double, Double), translation: (Double, Double)) {
      self.a = a
      self.translation = translation
    }

    public static let identity = Warp(a: (1, 0, 0, 1), translation: (0, 0))

    public static func == (l: Warp, r: Warp) -> Bool {
      l.a == r.a && l.translation == r.translation
    }
  }

  /// The inverse affine map of one example: the resized crop of an image of `height` ×
  /// `width`, then flips, rotation, scale, shear and the shift.
  func warp(random: RandomStream, example: Int, base: (dy: Int, dx: Int, flip: Bool), height: Int, width: Int) -> Warp {
    let warp = warp(random: random, example: example, base: base)
    guard let (top, left, h, w) = crop(random: random, example: example, height: height, width: width) else { return warp }
    // The transforms above map the output to a point p of the resized crop; the crop maps p
    // to the source: src − c = S·(p − c) + t_c, t_c the crop's centre less the image's. So
    // src − c = S·A·(dst − c) + S·t + t_c. The corner pixels' centres map to the crop's
    // (S = (w − 1)/(W − 1)), so no sample reaches past the crop into the zero padding at
    // the image's edge (a dark seam that torchvision's crop-then-resize does not have).
    let sx = (w - 1) / Double(max(width - 1, 1)), sy = (h - 1) / Double(max(height - 1, 1))
    let (a00, a01, a10, a11) = warp.a
    return Warp(
      a: (sx * a00, sx * a01, sy * a10, sy * a11),
      translation: (
        sx * warp.translation.0 + left + (w - 1) / 2 - Double(width - 1) / 2,
        sy * warp.translation.1 + top + (h - 1) / 2 - Double(height - 1) / 2
      ))
  }

  /// The inverse affine map of one example: flips, rotation, scale, shear and the shift.
  func warp(random: RandomStream, example: Int, base: (dy: Int, dx: Int, flip: Bool)) -> Warp {
    let bits = random.bits(at: UInt64(example))
    func unit(_ word: UInt32) -> Double { Double(word) / 4_294_967_296.0 }
    let angle = (2 * unit(bits.0) - 1) * rotation * .pi / 180
    let factor = 1 + (2 * unit(bits.1) - 1) * scale
    let shearAngle = (2 * unit(bits.2) - 1) * shear * .pi / 180
    let vertical = unit(bits.3) < verticalFlip
    // Forward map F = R(angle)·Shear·S(factor)·Flips; the warp samples with F⁻¹.
    let (c, s) = (cos(angle), sin(angle))
    let k = tan(shearAngle)
    // F = [[c, −s], [s, c]] · [[1, k], [0, 1]] · factor · diag(fx, fy)
    let fx: Double = base.flip ? -1 : 1
    let fy: Double = vertical ? -1 : 1
    let f00 = factor * c * fx, f01 = factor * (c * k - s) * fy
    let f10 = factor * s * fx, f11 = factor * (s * k + c) * fy
    let determinant = f00 * f11 - f01 * f10
    return Warp(
      a: (f11 / determinant, -f01 / determinant, -f10 / determinant, f00 / determinant),
      translation: (Double(base.dx), Double(base.dy)))
  }

  /// The erased rectangle of one example, if any: (top, left, height, width).
  func erasure(random: RandomStream, example: Int, height: Int, width: Int) -> (Int, Int, Int, Int)? {
    guard erasing > 0 else { return nil }
    let bits = random.bits(at: UInt64(example) | 1 << 41)
    func unit(_ word: UInt32) -> Double { Double(word) / 4_294_967_296.0 }
    guard unit(bits.0) < erasing else { return nil }
    let area = Double(height * width) * (0.02 + unit(bits.1) * 0.31)
    let aspect = exp(log(0.3) + unit(bits.2) * (log(3.3) - log(0.3)))
    let h = min(height, max(1, Int((area * aspect).squareRoot().rounded())))
    let w = min(width, max(1, Int((area / aspect).squareRoot().rounded())))
    let more = random.bits(at: UInt64(example) | 1 << 42)
    // Parenthesised: in Swift, >> binds tighter than *.
    let top = Int((UInt64(more.0) * UInt64(height - h + 1)) >> 32)
    let left = Int((UInt64(more.1) * UInt64(width - w + 1)) >> 32)
    return (top, left, h, w)
  }
}

extension Augmentation {
  /// The normalised 1-D Gaussian of σ = `elasticSigma`, radius ⌈3σ⌉ (computed once per
  /// batch, not per image).
  public var elasticKernel: [Float] {
    let radius = Int((3 * elasticSigma).rounded(.up))
    let weights = (-radius...radius).map { exp(-Double($0 * $0) / (2 * elasticSigma * elasticSigma)) }
    let total = weights.reduce(0, +)
    return weights.map { Float($0 / total) }
  }

  /// The smoothed displacement field of one example, [H·W] for x then [H·W] for y, written
  /// into `field` (2·H·W floats, with `temporary` the same size, which must exceed
  /// H·W + max(H, W) + 2·radius): uniform noise in
  /// [−1, 1], a separable Gaussian blur (`kernel` = `elasticKernel`), scaled by α.
  ///
  /// Napkin math (28×28, σ = 4, 25 taps): 2 planes × 2 passes × 784 × 25 = 78 k
  /// multiply-adds and 392 Philox blocks (four words each) per image: ~25 µs.
  func elasticField(
    random: RandomStream, example: Int, height: Int, width: Int, kernel: UnsafeBufferPointer<Float>,
    field: UnsafeMutablePointer<Float>, temporary: UnsafeMutablePointer<Float>
  ) {
    let pixels = height * width
    var i = 0
    while i < 2 * pixels {
      let word = random.bits(at: UInt64(example) << 20 | UInt64(i / 4) | 1 << 43)
      field[i] = Float(word.0) / 2_147_483_648 - 1
      if i + 1 < 2 * pixels { field[i + 1] = Float(word.1) / 2_147_483_648 - 1 }
      if i + 2 < 2 * pixels { field[i + 2] = Float(word.2) / 2_147_483_648 - 1 }
      if i + 3 < 2 * pixels { field[i + 3] = Float(word.3) / 2_147_483_648 - 1 }
      i += 4
    }
    let taps = kernel.count
    let radius = taps / 2
    let alpha = Float(elasticAlpha)
    // A line at a time through an edge-replicated copy: with σ = 4 on 28-pixel lines,
    // almost every output is within a radius of the border, so clamping per tap would
    // dominate; the copy makes the convolution branch-free.
    let padded = temporary + pixels
    @inline(__always) func blur(
      _ source: UnsafeMutablePointer<Float>, _ destination: UnsafeMutablePointer<Float>, stride: Int, count: Int, lines: Int,
      lineStride: Int, scale: Float
    ) {
      for line in 0..<lines {
        let input = source + line * lineStride
        for p in 0..<(count + 2 * radius) { padded[p] = input[min(max(p - radius, 0), count - 1) * stride] }
        let output = destination + line * lineStride
        // Eight neighbouring outputs at once, one per SIMD lane: each lane still sums its
        // taps in order, but eight independent chains hide the adds' latency.
        var position = 0
        while position + 8 <= count {
          var sum = SIMD8<Float>()
          for k in 0..<taps {
            sum.addProduct(SIMD8(repeating: kernel[k]), UnsafeRawPointer(padded + position + k).loadUnaligned(as: SIMD8<Float>.self))
          }
          for lane in 0..<8 { output[(position + lane) * stride] = sum[lane] * scale }
          position += 8
        }
        while position < count {
          var sum: Float = 0
          for k in 0..<taps { sum += kernel[k] * padded[position + k] }
          output[position * stride] = sum * scale
          position += 1
        }
      }
    }
    for plane in 0..<2 {
      let values = field + plane * pixels
      blur(values, temporary, stride: 1, count: width, lines: height, lineStride: width, scale: 1)
      blur(temporary, values, stride: width, count: height, lines: width, lineStride: 1, scale: alpha)
    }
  }
}

extension Augmentation {
  /// The displacement field an example draws in epoch 0 (for tests and inspection).
  public func elasticFieldForTesting(
    seed: UInt64, example: Int, height: Int, width: Int, field: UnsafeMutablePointer<Float>, temporary: UnsafeMutablePointer<Float>
  ) {
    let random = RandomStream(seed: seed, purpose: .augmentation, stream: 0x8000_0000)
    elasticKernel.withUnsafeBufferPointer {
      elasticField(random: random, example: example, height: height, width: width, kernel: $0, field: field, temporary: temporary)
    }
  }
}

/// Bilinear resampling of one image under an inverse affine map and an optional
/// displacement field (elastic distortion), zero outside.
/// source: [H, W, C] floats (raw pixel values); destination likewise; displacement: [H·W]
/// of x offsets then [H·W] of y offsets, in pixels, added to the sampling position.
public func warpImage(
  _ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, height: Int, width: Int, channels: Int,
  warp: Augmentation.Warp, displacement: UnsafePointer<Float>? = nil
) {
  let cy = Double(height - 1) / 2, cx = Double(width - 1) / 2
  let (a00, a01, a10, a11) = warp.a
  for y in 0..<height {
    for x in 0..<width {
      // (x, y) relative to the centre, minus the shift, through the inverse map.
      let u = Double(x) - cx - warp.translation.0
      let v = Double(y) - cy - warp.translation.1
      var sx = a00 * u + a01 * v + cx
      var sy = a10 * u + a11 * v + cy
      if let displacement {
        sx += Double(displacement[y * width + x])
        sy += Double(displacement[height * width + y * width + x])
      }
      let x0 = Int(sx.rounded(.down)), y0 = Int(sy.rounded(.down))
      let fx = Float(sx - Double(x0)), fy = Float(sy - Double(y0))
      for c in 0..<channels {
        func pixel(_ yy: Int, _ xx: Int) -> Float {
          (yy >= 0 && yy < height && xx >= 0 && xx < width) ? source[(yy * width + xx) * channels + c] : 0
        }
        let top = pixel(y0, x0) * (1 - fx) + pixel(y0, x0 + 1) * fx
        let bottom = pixel(y0 + 1, x0) * (1 - fx) + pixel(y0 + 1, x0 + 1) * fx
        destination[(y * width + x) * channels + c] = top * (1 - fy) + bottom * fy
      }
    }
  }
}

/// Test-time augmentation: predictions averaged over fixed transforms of each image.
public struct TestTimeAugmentation: Codable, Equatable, Sendable {
  /// Add the left-right mirror of every transform.
  public var flips: Bool
  /// Add shifts by this many pixels up, down, left and right (0: none).
  public var shift: Int

  public init(flips: Bool = false, shift: Int = 0) {
    self.flips = flips
    self.shift = shift
  }

  public static let none = TestTimeAugmentation()

  /// The transforms as (dy, dx, flip), the identity first.
  public var transforms: [(dy: Int, dx: Int, flip: Bool)] {
    var offsets = [(0, 0)]
    if shift > 0 { offsets += [(-shift, 0), (shift, 0), (0, -shift), (0, shift)] }
    return offsets.flatMap { offset in
      flips ? [(offset.0, offset.1, false), (offset.0, offset.1, true)] : [(offset.0, offset.1, false)]
    }
  }
}

/// Colour jitter of one image of raw pixel values (0…255) in place, torchvision's order and
/// formulas: brightness scales, contrast blends with the mean of the grey image, saturation
/// blends each pixel with its grey (ITU-R 601-2 luma: 0.299, 0.587, 0.114); each clamped
/// to 0…255. One channel: its grey is itself, so saturation leaves it.
public func jitterColours(
  _ image: UnsafeMutablePointer<Float>, pixels: Int, channels: Int, brightness: Float, contrast: Float, saturation: Float
) {
  let count = pixels * channels
  func clamp(_ value: Float) -> Float { min(max(value, 0), 255) }
  func grey(_ pixel: Int) -> Float {
    channels == 3 ? 0.299 * image[3 * pixel] + 0.587 * image[3 * pixel + 1] + 0.114 * image[3 * pixel + 2] : image[pixel * channels]
  }
  if brightness != 1 { for i in 0..<count { image[i] = clamp(image[i] * brightness) } }
  if contrast != 1 {
    var sum: Float = 0
    for p in 0..<pixels { sum += grey(p) }
    let mean = sum / Float(pixels)
    for i in 0..<count { image[i] = clamp(contrast * image[i] + (1 - contrast) * mean) }
  }
  if saturation != 1 && channels == 3 {
    for p in 0..<pixels {
      let g = grey(p)
      for c in 0..<3 { image[3 * p + c] = clamp(saturation * image[3 * p + c] + (1 - saturation) * g) }
    }
  }
}
