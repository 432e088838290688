/// A named file that travels with a result, byte for byte (a safetensors checkpoint): the
/// same chunked LZ4 frames as a tensor, without conversion or shuffling.
public struct WireFile: Equatable, Sendable {
  public var name: String
  public var bytes: [UInt8]

  public init(name: String, bytes: [UInt8]) {
    self.name = name
    self.bytes = bytes
  }
}

/// What the metadata says of a file; the frames carry the bytes.
struct FileDescription: Codable, Equatable {
  var name: String
  /// Raw bytes of each chunk.
  var chunks: [Int]
}

/// Names of tensors and files become parts of file names in the run directory, so they
/// are short words: letters, digits, '-' and '_' ("oof", "test", "checkpoint").
enum WireName {
  static let maximumLength = 64

  static func isValid(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.count <= maximumLength
      && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
  }
}
