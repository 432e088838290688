import Foundation

/// The .npy format (version 1.0): magic, a Python-literal header padded to 64 bytes,
/// then raw little-endian values. Read by `numpy.load` without Quorum.
public enum NumPy {
  public enum DType: String, Sendable {
    case float32 = "<f4"
    case int32 = "<i4"
    case uint8 = "|u1"
    var size: Int { self == .uint8 ? 1 : 4 }
  }

  /// Serialises float32 values of the given shape.
  public static func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int]) -> [UInt8] {
    precondition(values.count == shape.reduce(1, *))
    var bytes = header(dtype: .float32, shape: shape)
    bytes.append(contentsOf: UnsafeRawBufferPointer(values))
    return bytes
  }

  public static func encode(_ values: [UInt8], shape: [Int]) -> [UInt8] {
    header(dtype: .uint8, shape: shape) + values
  }

  public static func encode(_ values: [Int32], shape: [Int]) -> [UInt8] {
    var bytes = header(dtype: .int32, shape: shape)
    values.withUnsafeBytes { bytes.append(contentsOf: $0) }
    return bytes
  }

  static func header(dtype: DType, shape: [Int]) -> [UInt8] {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var text = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
    // magic (6) + version (2) + length (2) + text + "\n" is padded to a multiple of 64.
    let unpadded = 10 + text.utf8.count + 1
    text += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    let length = UInt16(text.utf8.count)
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(text.utf8)
  }

  public static func write(_ values: [Float], shape: [Int], to path: String) throws {
    let bytes = values.withUnsafeBufferPointer { encode($0, shape: shape) }
    try FileBytes.writeAtomically(bytes, to: path)
  }

  /// Reads an array: its dtype, shape and the raw payload, checking the payload size.
  public static func read(_ path: String) throws -> (dtype: DType, shape: [Int], payload: [UInt8]) {
    try parse(try FileBytes.read(path), path: path)
  }

  /// An array's bytes checked as `read` checks a file's; `path` names them in errors.
  public static func parse(_ bytes: [UInt8], path: String) throws -> (dtype: DType, shape: [Int], payload: [UInt8]) {
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1..<6]) == Array("NUMPY".utf8) else {
      throw DataError(file: path, "not a .npy file (bad magic)")
    }
    let major = bytes[6]
    let lengthSize = major == 1 ? 2 : 4
    guard [1, 2, 3].contains(major), bytes.count >= 8 + lengthSize else {
      throw DataError(file: path, "unsupported .npy version \(major)")
    }
    var headerLength = 0
    for i in 0..<lengthSize { headerLength |= Int(bytes[8 + i]) << (8 * i) }
    let start = 8 + lengthSize + headerLength
    guard bytes.count >= start, let text = String(bytes: bytes[(8 + lengthSize)..<start], encoding: .utf8) else {
      throw DataError(file: path, "truncated .npy header")
    }
    guard let descr = field(text, "descr"), let dtype = DType(rawValue: descr.trimmingCharacters(in: ["'", "\""])) else {
      throw DataError(file: path, "unsupported dtype in header \(text.trimmingCharacters(in: .whitespacesAndNewlines)); expected <f4, <i4 or |u1")
    }
    if field(text, "fortran_order")?.hasPrefix("True") == true {
      throw DataError(file: path, "Fortran-ordered arrays are not supported")
    }
    guard let open = text.range(of: "'shape': ("), let close = text[open.upperBound...].firstIndex(of: ")") else {
      throw DataError(file: path, "no shape in header")
    }
    let shape = text[open.upperBound..<close].split(separator: ",").compactMap {
      Int($0.trimmingCharacters(in: .whitespaces))
    }
    guard let expected = DeclaredSize.product(shape + [dtype.size]) else {
      throw DataError(file: path, "shape \(shape) declares more bytes than any file holds")
    }
    guard bytes.count - start == expected else {
      throw DataError(file: path, "payload is \(bytes.count - start) bytes, shape \(shape) of \(dtype.rawValue) needs \(expected)")
    }
    return (dtype, shape, Array(bytes[start...]))
  }

  /// Reads a float32 array.
  public static func readFloat32(_ path: String) throws -> (shape: [Int], values: [Float]) {
    let (dtype, shape, payload) = try read(path)
    guard dtype == .float32 else { throw DataError(file: path, "dtype is \(dtype.rawValue), expected <f4") }
    let values = payload.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    return (shape, values)
  }

  private static func field(_ header: String, _ key: String) -> String? {
    guard let range = header.range(of: "'\(key)': ") else { return nil }
    let rest = header[range.upperBound...]
    let end = rest.firstIndex(of: ",") ?? rest.endIndex
    return String(rest[..<end]).trimmingCharacters(in: .whitespaces)
  }
}
