/// How images are resampled to the model's input size.
public enum Interpolation: String, Codable, CaseIterable, Sendable {
  /// The nearest source pixel.
  case nearest
  /// Bilinear between the four nearest, pixel centres aligned (align_corners = false).
  case bilinear
  /// The mean over the source area each output pixel covers (for shrinking).
  case area

  /// Resamples 8-bit [H, W, C] pixels to `height` × `width`.
  public func resize(_ image: DecodedImage, height: Int, width: Int) -> DecodedImage {
    if image.height == height && image.width == width { return image }
    let c = image.channels
    var output = [UInt8](repeating: 0, count: height * width * c)
    let scaleY = Double(image.height) / Double(height), scaleX = Double(image.width) / Double(width)
    func source(_ y: Int, _ x: Int, _ k: Int) -> Double {
      Double(image.pixels[(min(max(y, 0), image.height - 1) * image.width + min(max(x, 0), image.width - 1)) * c + k])
    }
    for y in 0..<height {
      for x in 0..<width {
        for k in 0..<c {
          let value: Double
          switch self {
          case .nearest:
            value = source(Int((Double(y) + 0.5) * scaleY), Int((Double(x) + 0.5) * scaleX), k)
          case .bilinear:
            let sy = (Double(y) + 0.5) * scaleY - 0.5, sx = (Double(x) + 0.5) * scaleX - 0.5
            let y0 = Int(sy.rounded(.down)), x0 = Int(sx.rounded(.down))
            let fy = sy - Double(y0), fx = sx - Double(x0)
            value = (source(y0, x0, k) * (1 - fx) + source(y0, x0 + 1, k) * fx) * (1 - fy)
              + (source(y0 + 1, x0, k) * (1 - fx) + source(y0 + 1, x0 + 1, k) * fx) * fy
          case .area:
            let top = Double(y) * scaleY, bottom = Double(y + 1) * scaleY
            let left = Double(x) * scaleX, right = Double(x + 1) * scaleX
            var sum = 0.0, weight = 0.0
            for sy in Int(top.rounded(.down))..<Int(bottom.rounded(.up)) {
              let wy = min(bottom, Double(sy + 1)) - max(top, Double(sy))
              for sx in Int(left.rounded(.down))..<Int(right.rounded(.up)) {
                let w = wy * (min(right, Double(sx + 1)) - max(left, Double(sx)))
                sum += w * source(sy, sx, k)
                weight += w
              }
            }
            value = sum / weight
          }
          output[(y * width + x) * c + k] = UInt8(min(max(value.rounded(), 0), 255))
        }
      }
    }
    return DecodedImage(pixels: output, height: height, width: width, channels: c)
  }
}
