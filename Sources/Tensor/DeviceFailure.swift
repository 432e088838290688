import Foundation

/// The first failure of a device backend (see "Failures" in `Backend`): which device, what
/// the backend was doing, and the device's own words. An out-of-memory failure says how
/// much was asked and what was left, so that the caller can name the batch size to lower.
public struct DeviceFailure: Error, CustomStringConvertible {
  /// The device, as the backend names itself ("cuda (NVIDIA H100, sm_90, float32)").
  public var device: String
  /// The backend operation that failed ("makeTensor([256, 56, 56, 144])").
  public var operation: String
  /// The driver's error, with its hint.
  public var reason: String
  /// Bytes asked and bytes free when an allocation failed; nil for any other failure.
  public var memory: (asked: Int, free: Int, heldByBackend: Int)?

  public init(device: String, operation: String, reason: String, memory: (asked: Int, free: Int, heldByBackend: Int)? = nil) {
    self.device = device
    self.operation = operation
    self.reason = reason
    self.memory = memory
  }

  public var isOutOfMemory: Bool { memory != nil }

  public var description: String {
    guard let memory else { return "\(device), \(operation): \(reason)" }
    return "out of device memory on \(device): \(operation) asked \(Self.mebibytes(memory.asked)) with \(Self.mebibytes(memory.free)) free "
      + "(\(Self.mebibytes(memory.heldByBackend)) already held by this model's tensors)"
  }

  static func mebibytes(_ bytes: Int) -> String {
    bytes < 1 << 20 ? "\(bytes) bytes" : String(format: "%.1f MiB", Double(bytes) / Double(1 << 20))
  }
}
