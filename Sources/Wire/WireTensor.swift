/// How tensor values travel.
public enum WirePrecision: String, Codable, Sendable {
  case float32, float16, bfloat16
  var size: Int { self == .float32 ? 4 : 2 }
}

/// A named float tensor and the precision it is sent in (decoded values are float32).
public struct WireTensor: Equatable, Sendable {
  public var name: String
  public var shape: [Int]
  public var values: [Float]
  public var precision: WirePrecision

  public init(name: String, shape: [Int], values: [Float], precision: WirePrecision = .float32) {
    precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
    self.name = name
    self.shape = shape
    self.values = values
    self.precision = precision
  }
}

/// What the metadata says of a tensor; the frames carry the bytes.
struct TensorDescription: Codable, Equatable {
  var name: String
  var shape: [Int]
  var precision: WirePrecision
  /// Raw (shuffled, uncompressed) bytes of each chunk.
  var chunks: [Int]
}
