/// A dense float32 buffer with a shape, in row-major order. Images are NHWC.
///
/// A tensor owns its memory (64-byte aligned, so SIMD loads never straddle a cache line)
/// and frees it in `deinit`. Layers allocate their tensors once, for the largest batch
/// they will see, and then run smaller batches in the same storage: the batch size is
/// passed to every operation, so a training step allocates nothing.
public final class Tensor {
  /// The shape the tensor was allocated with (the largest it can hold).
  public let shape: [Int]
  /// Number of floats the storage holds.
  public let capacity: Int
  /// The storage; valid for the tensor's lifetime.
  public let data: UnsafeMutablePointer<Float>

  public init(shape: [Int]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.shape = shape
    self.capacity = shape.reduce(1, *)
    let bytes = max(capacity, 1) * MemoryLayout<Float>.stride
    data = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
      .bindMemory(to: Float.self, capacity: max(capacity, 1))
    data.initialize(repeating: 0, count: max(capacity, 1))
  }

  public convenience init(shape: [Int], values: [Float]) {
    self.init(shape: shape)
    precondition(values.count == capacity, "\(values.count) values for shape \(shape)")
    values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: capacity) }
  }

  deinit { UnsafeMutableRawPointer(data).deallocate() }

  public subscript(index: Int) -> Float {
    get { data[index] }
    set { data[index] = newValue }
  }

  /// The first `count` values (all of them by default) as an array.
  public func array(count: Int? = nil) -> [Float] {
    Array(UnsafeBufferPointer(start: data, count: count ?? capacity))
  }

  public func fill(_ value: Float, count: Int? = nil) {
    data.update(repeating: value, count: count ?? capacity)
  }

  public func copy(from other: Tensor, count: Int? = nil) {
    let n = count ?? capacity
    precondition(n <= capacity && n <= other.capacity)
    data.update(from: other.data, count: n)
  }
}
