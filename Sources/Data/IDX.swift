import Files
/// The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a
/// type code, the number of dimensions, then each dimension as u32) and raw values.
public enum IDX {
  /// Reads an unsigned-byte IDX file with `dimensions` dimensions, checking the header
  /// and that the payload is exactly the declared size.
  public static func read(_ path: String, dimensions expected: Int) throws -> (shape: [Int], values: [UInt8]) {
    try parse(try FileBytes.read(path), path: path, dimensions: expected...expected)
  }

  /// An image file: [n, H, W] (grey, as MNIST's) or [n, H, W, C] (colour), as
  /// (n, H, W, C) and the pixels.
  public static func readImages(_ path: String) throws -> (shape: (count: Int, height: Int, width: Int, channels: Int), pixels: [UInt8]) {
    let (shape, pixels) = try parse(try FileBytes.read(path), path: path, dimensions: 3...4)
    return ((shape[0], shape[1], shape[2], shape.count == 4 ? shape[3] : 1), pixels)
  }

  /// A file's bytes checked as `read` checks them; `path` names them in errors.
  public static func parse(_ bytes: [UInt8], path: String, dimensions expected: Int) throws -> (shape: [Int], values: [UInt8]) {
    try parse(bytes, path: path, dimensions: expected...expected)
  }

  static func parse(_ bytes: [UInt8], path: String, dimensions expected: ClosedRange<Int>) throws -> (shape: [Int], values: [UInt8]) {
    guard bytes.count >= 4 else { throw DataError(file: path, "too short for an IDX header (\(bytes.count) bytes)") }
    guard bytes[0] == 0, bytes[1] == 0 else {
      throw DataError(file: path, "not an IDX file: magic starts with \(hex(bytes[0])) \(hex(bytes[1])), expected 00 00")
    }
    guard bytes[2] == 0x08 else {
      throw DataError(file: path, "IDX type code \(hex(bytes[2])) is not unsigned byte (08)")
    }
    let dimensions = Int(bytes[3])
    guard expected.contains(dimensions) else {
      let wanted = expected.count == 1 ? "\(expected.lowerBound)" : "\(expected.lowerBound) or \(expected.upperBound)"
      throw DataError(file: path, "has \(dimensions) dimensions, expected \(wanted) (images 3, or 4 in colour; labels 1)")
    }
    let headerSize = 4 + 4 * dimensions
    guard bytes.count >= headerSize else { throw DataError(file: path, "truncated inside the IDX header") }
    var shape: [Int] = []
    for d in 0..<dimensions {
      let offset = 4 + 4 * d
      shape.append(Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3]))
    }
    let present = bytes.count - headerSize
    guard let declared = DeclaredSize.product(shape) else {
      throw DataError(file: path, "header declares \(shape): more values than any file holds")
    }
    guard present == declared else {
      throw DataError(
        file: path,
        present < declared
          ? "truncated: header declares \(shape) = \(declared) values, file holds \(present)"
          : "\(present - declared) bytes of trailing data after the \(declared) values the header declares")
    }
    return (shape, Array(bytes[headerSize...]))
  }

  private static func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
  }
}
