import CPNG
import CTurboJPEG
import Files

/// 8-bit pixels, row-major, channels interleaved.
public struct DecodedImage: Equatable {
  public var pixels: [UInt8]
  public var height: Int
  public var width: Int
  public var channels: Int

  public init(pixels: [UInt8], height: Int, width: Int, channels: Int) {
    precondition(pixels.count == height * width * channels)
    self.pixels = pixels
    self.height = height
    self.width = width
    self.channels = channels
  }
}

/// PNG through libpng's simplified API and JPEG through TurboJPEG: both report errors as
/// return codes (classic libjpeg's longjmp cannot be caught from Swift).
public enum ImageCodec {
  /// The most pixels a decoded image may have (8,192 × 8,192): a header is checked against
  /// it before the pixels are allocated, so a file claiming 65,535 × 65,535 is an error
  /// naming the file, not an aborted process.
  public static let maximumPixels = 1 << 26

  static func checkSize(height: Int, width: Int, format: String, path: String) throws {
    guard height > 0, width > 0 else { throw DataError(file: path, "unreadable \(format) (header): it declares a \(width)×\(height) image") }
    guard DeclaredSize.product([height, width], limit: maximumPixels) != nil else {
      throw DataError(file: path, "declares a \(width)×\(height) image: Quorum decodes at most \(maximumPixels) pixels (8192×8192)")
    }
  }

  /// Decodes a PNG or JPEG file's bytes to 1 (grey) or 3 (RGB) channels, converting
  /// colour and bit depth as needed; alpha is composited onto black.
  public static func decode(_ bytes: [UInt8], path: String, channels: Int) throws -> DecodedImage {
    precondition(channels == 1 || channels == 3)
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decodePNG(bytes, path: path, channels: channels) }
    if bytes.starts(with: [0xFF, 0xD8]) { return try decodeJPEG(bytes, path: path, channels: channels) }
    throw DataError(file: path, "is neither PNG nor JPEG (starts with \(bytes.prefix(4).map { String($0, radix: 16) }))")
  }

  /// Whether the file stores colour (a PNG of colour type 2, 3 or 6; a JPEG not in the grey
  /// colour space), read from its header; nil for what `decode` would not read. What
  /// `decode` converts, a loader reports (`ImageDataset.convertedImages`).
  public static func storesColour(_ bytes: [UInt8]) -> Bool? {
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
      // Signature (8), IHDR length and type (8), width, height (8), bit depth (1), colour type.
      guard bytes.count > 25 else { return nil }
      return bytes[25] & 2 != 0
    }
    if bytes.starts(with: [0xFF, 0xD8]) {
      guard let handle = tjInitDecompress() else { return nil }
      defer { tjDestroy(handle) }
      var (width, height, subsampling, colorspace): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
      let size = UInt(bytes.count)
      guard bytes.withUnsafeBufferPointer({ tjDecompressHeader3(handle, $0.baseAddress, size, &width, &height, &subsampling, &colorspace) }) == 0 else {
        return nil
      }
      return colorspace != TJCS_GRAY.rawValue
    }
    return nil
  }

  static func decodePNG(_ bytes: [UInt8], path: String, channels: Int) throws -> DecodedImage {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    defer { png_image_free(&image) }
    func failure(_ stage: String) -> DataError {
      let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      return DataError(file: path, "unreadable PNG (\(stage)): \(message)")
    }
    guard bytes.withUnsafeBytes({ png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }) != 0 else {
      throw failure("header")
    }
    image.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
    let (height, width) = (Int(image.height), Int(image.width))
    try checkSize(height: height, width: width, format: "PNG", path: path)
    var pixels = [UInt8](repeating: 0, count: height * width * channels)
    guard pixels.withUnsafeMutableBytes({ png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }) != 0 else {
      throw failure("pixels")
    }
    return DecodedImage(pixels: pixels, height: height, width: width, channels: channels)
  }

  static func decodeJPEG(_ bytes: [UInt8], path: String, channels: Int) throws -> DecodedImage {
    guard let handle = tjInitDecompress() else { throw DataError(file: path, "TurboJPEG could not start") }
    defer { tjDestroy(handle) }
    func failure(_ stage: String) -> DataError {
      DataError(file: path, "unreadable JPEG (\(stage)): \(String(cString: tjGetErrorStr2(handle)))")
    }
    var (width, height, subsampling, colorspace): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
    let size = UInt(bytes.count)
    guard bytes.withUnsafeBufferPointer({ tjDecompressHeader3(handle, $0.baseAddress, size, &width, &height, &subsampling, &colorspace) }) == 0 else {
      throw failure("header")
    }
    try checkSize(height: Int(height), width: Int(width), format: "JPEG", path: path)
    var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * channels)
    let format = channels == 1 ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue
    let status = bytes.withUnsafeBufferPointer { source in
      pixels.withUnsafeMutableBufferPointer { destination in
        tjDecompress2(handle, source.baseAddress, size, destination.baseAddress, width, 0, height, Int32(format), 0)
      }
    }
    // A warning (e.g. a truncated stream that still decoded partly) is an error here:
    // half an image must not be trained on.
    guard status == 0 else { throw failure("pixels") }
    return DecodedImage(pixels: pixels, height: Int(height), width: Int(width), channels: channels)
  }

  /// Encodes 8-bit grey or RGB pixels as PNG (for reports and tests).
  public static func encodePNG(_ image: DecodedImage) throws -> [UInt8] {
    var png = png_image()
    png.version = UInt32(PNG_IMAGE_VERSION)
    png.width = UInt32(image.width)
    png.height = UInt32(image.height)
    png.format = image.channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
    var size = 0
    guard image.pixels.withUnsafeBytes({ png_image_write_to_memory(&png, nil, &size, 0, $0.baseAddress, 0, nil) }) != 0 else {
      throw DataError(file: "(png)", "cannot encode")
    }
    var bytes = [UInt8](repeating: 0, count: size)
    let ok = bytes.withUnsafeMutableBytes { output in
      image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, output.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
    }
    guard ok != 0 else { throw DataError(file: "(png)", "cannot encode") }
    return Array(bytes.prefix(size))
  }

  /// Encodes 8-bit grey or RGB pixels as JPEG of the given quality (for tests).
  public static func encodeJPEG(_ image: DecodedImage, quality: Int = 95) throws -> [UInt8] {
    guard let handle = tjInitCompress() else { throw DataError(file: "(jpeg)", "TurboJPEG could not start") }
    defer { tjDestroy(handle) }
    var output: UnsafeMutablePointer<UInt8>?
    var size: UInt = 0
    let format = image.channels == 1 ? TJPF_GRAY.rawValue : TJPF_RGB.rawValue
    let subsampling = image.channels == 1 ? TJSAMP_GRAY.rawValue : TJSAMP_444.rawValue
    let status = image.pixels.withUnsafeBufferPointer {
      tjCompress2(handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(format), &output, &size,
        Int32(subsampling), Int32(quality), 0)
    }
    defer { tjFree(output) }
    guard status == 0, let output else { throw DataError(file: "(jpeg)", "cannot encode: \(String(cString: tjGetErrorStr2(handle)))") }
    return Array(UnsafeBufferPointer(start: output, count: Int(size)))
  }
}
