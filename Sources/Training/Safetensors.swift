import Data
import Files
import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping
/// each tensor name to {dtype, shape, data_offsets} (plus an optional string map
/// "__metadata__"), then the raw little-endian bytes. Python's `safetensors` reads it.
public struct Safetensors {
  public enum DType: String, Sendable {
    case F32, I64, I32, F16, BF16, U8
    var size: Int {
      switch self {
      case .F32, .I32: return 4
      case .I64: return 8
      case .F16, .BF16: return 2
      case .U8: return 1
      }
    }
  }

  public struct Entry {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: Range<Int>
  }

  public var metadata: [String: String]
  /// Entries in file order.
  public var entries: [Entry]
  /// The data section.
  public var data: [UInt8]
  /// Where it was read from, for error messages.
  public var path: String

  /// Largest header accepted (safetensors' own limit is 100 MB).
  static let maximumHeader = 100_000_000

  public init(metadata: [String: String] = [:]) {
    self.metadata = metadata
    entries = []
    data = []
    path = "(memory)"
  }

  public mutating func append(_ name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) {
    precondition(bytes.count == shape.reduce(1, *) * dtype.size, "\(name): byte count does not match shape")
    let start = data.count
    data.append(contentsOf: bytes)
    entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: start..<data.count))
  }

  public mutating func append(_ name: String, shape: [Int], floats: UnsafePointer<Float>) {
    append(name, dtype: .F32, shape: shape, bytes: UnsafeRawBufferPointer(start: floats, count: shape.reduce(1, *) * 4))
  }

  public mutating func append(_ name: String, int64 value: Int64) {
    var littleEndian = value.littleEndian
    withUnsafeBytes(of: &littleEndian) { append(name, dtype: .I64, shape: [], bytes: $0) }
  }

  public func entry(_ name: String) -> Entry? { entries.first { $0.name == name } }

  /// The values of a float tensor as float32, checking its dtype and (if given) its
  /// shape. Half-precision files (F16, BF16: weights saved with `model.half()` or
  /// `.bfloat16()`) widen exactly.
  public func floats(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
    guard let entry = entry(name) else { throw DataError(file: path, "has no tensor \"\(name)\"") }
    guard [.F32, .F16, .BF16].contains(entry.dtype) else {
      throw DataError(file: path, "tensor \"\(name)\" is \(entry.dtype.rawValue), expected a float tensor (F32, F16 or BF16)")
    }
    if let expected, expected != entry.shape {
      throw DataError(file: path, "tensor \"\(name)\" has shape \(entry.shape), the model expects \(expected)")
    }
    return data[entry.bytes].withUnsafeBytes { bytes in
      switch entry.dtype {
      case .F16: return bytes.bindMemory(to: UInt16.self).map(Self.widenHalf)
      case .BF16: return bytes.bindMemory(to: UInt16.self).map { Float(bitPattern: UInt32($0) << 16) }
      default: return Array(bytes.bindMemory(to: Float.self))
      }
    }
  }

  /// IEEE 754 binary16 to binary32, exactly (subnormals, infinities and NaNs included).
  static func widenHalf(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = Int(bits >> 10 & 0x1F)
    let fraction = UInt32(bits & 0x3FF)
    switch exponent {
    case 0:
      // Subnormal (or zero): fraction · 2⁻²⁴.
      let magnitude = Float(fraction) * Float(sign: .plus, exponent: -24, significand: 1)
      return sign == 0 ? magnitude : -magnitude
    case 31: return Float(bitPattern: sign | 0x7F80_0000 | fraction << 13)
    default: return Float(bitPattern: sign | UInt32(exponent + 112) << 23 | fraction << 13)
    }
  }

  public func int64(_ name: String) throws -> Int64 {
    guard let entry = entry(name), entry.dtype == .I64, entry.bytes.count == 8 else {
      throw DataError(file: path, "has no I64 scalar \"\(name)\"")
    }
    return data[entry.bytes].withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
  }

  /// The file's bytes; the header is padded with spaces to a multiple of 8 bytes so
  /// that the data section is aligned.
  public func encoded() throws -> [UInt8] {
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    for entry in entries {
      header[entry.name] = ["dtype": entry.dtype.rawValue, "shape": entry.shape, "data_offsets": [entry.bytes.lowerBound, entry.bytes.upperBound]]
    }
    var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
    json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
    var length = UInt64(json.count).littleEndian
    var bytes = withUnsafeBytes(of: &length) { [UInt8]($0) }
    bytes += json
    bytes += data
    return bytes
  }

  public func write(to path: String) throws {
    try FileBytes.writeAtomically(try encoded(), to: path)
  }

  /// Reads and validates a file: header within bounds, known dtypes, byte ranges that
  /// match the shapes and tile the data section exactly.
  public static func read(_ path: String) throws -> Safetensors {
    try parse(try FileBytes.read(path), path: path)
  }

  /// Validates a file's bytes as `read` does; `path` names them in errors (a file, or a
  /// result's checkpoint).
  public static func parse(_ bytes: [UInt8], path: String) throws -> Safetensors {
    func fail(_ problem: String) -> DataError { DataError(file: path, problem) }
    guard bytes.count >= 8 else { throw fail("too short for a safetensors header (\(bytes.count) bytes)") }
    let declaredLength = bytes[0..<8].withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    // Compared as UInt64 first: a length past Int.max would trap on conversion.
    guard declaredLength <= UInt64(maximumHeader), Int(declaredLength) <= bytes.count - 8 else {
      throw fail("header length \(declaredLength) exceeds the file (\(bytes.count) bytes): truncated or not safetensors")
    }
    let headerLength = Int(declaredLength)
    let headerBytes = Data(bytes[8..<(8 + headerLength)])
    guard let header = (try? JSONSerialization.jsonObject(with: headerBytes)) as? [String: Any] else {
      throw fail("header is not a JSON object")
    }
    var file = Safetensors()
    file.path = path
    file.data = Array(bytes[(8 + headerLength)...])
    if let metadata = header["__metadata__"] {
      guard let strings = metadata as? [String: String] else { throw fail("__metadata__ must map strings to strings") }
      file.metadata = strings
    }
    for (name, value) in header where name != "__metadata__" {
      guard let fields = value as? [String: Any], let dtypeName = fields["dtype"] as? String,
        let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int], offsets.count == 2
      else { throw fail("tensor \"\(name)\" lacks dtype, shape or data_offsets") }
      guard let dtype = DType(rawValue: dtypeName) else { throw fail("tensor \"\(name)\" has unsupported dtype \(dtypeName)") }
      guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= file.data.count else {
        throw fail("tensor \"\(name)\" has offsets \(offsets) outside the \(file.data.count)-byte data section")
      }
      guard let needed = DeclaredSize.product(shape + [dtype.size]), offsets[1] - offsets[0] == needed else {
        let needs = DeclaredSize.product(shape + [dtype.size]).map { "\($0) bytes" } ?? "more bytes than any file holds"
        throw fail("tensor \"\(name)\" of shape \(shape) \(dtypeName) needs \(needs), offsets give \(offsets[1] - offsets[0])")
      }
      file.entries.append(Entry(name: name, dtype: dtype, shape: shape, bytes: offsets[0]..<offsets[1]))
    }
    file.entries.sort { $0.bytes.lowerBound < $1.bytes.lowerBound || ($0.bytes.lowerBound == $1.bytes.lowerBound && $0.bytes.upperBound < $1.bytes.upperBound) }
    var cursor = 0
    for entry in file.entries {
      guard entry.bytes.lowerBound == cursor else { throw fail("tensor \"\(entry.name)\" overlaps another or leaves a gap at byte \(cursor)") }
      cursor = entry.bytes.upperBound
    }
    guard cursor == file.data.count else { throw fail("\(file.data.count - cursor) bytes after the last tensor") }
    return file
  }
}
