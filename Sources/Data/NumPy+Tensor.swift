import Files
import Tensor

extension NumPy {
  /// Writes a host tensor's first `shape` values as a float32 array, atomically.
  public static func write(_ tensor: Tensor, shape: [Int], to path: String) throws {
    let bytes = encode(UnsafeBufferPointer(start: tensor.data, count: shape.reduce(1, *)), shape: shape)
    try FileBytes.writeAtomically(bytes, to: path)
  }
}
