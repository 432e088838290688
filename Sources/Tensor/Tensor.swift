/// A dense buffer of 4-byte words (float32, or int32 for labels) with a shape, in
/// row-major order. Images are NHWC.
///
/// Either host memory (64-byte aligned, so SIMD loads never straddle a cache line), which
/// the tensor owns and frees in `deinit`: the CPU backend's tensors, and the host buffers
/// of the data pipeline; or a device backend's buffer (`storage`), which only that backend
/// reads and writes (`data` is nil). NN and Training go through `Backend` for both, so the
/// same model code runs on either (docs/compute-core.md, "The Backend contract").
///
/// Layers allocate their tensors once, for the largest batch they will see, and then run
/// smaller batches in the same storage: the batch size is passed to every operation, so a
/// training step allocates nothing.
public final class Tensor {
  /// The shape the tensor was allocated with (the largest it can hold).
  public let shape: [Int]
  /// Number of words the storage holds.
  public let capacity: Int
  /// The host storage, valid for the tensor's lifetime; nil for a device tensor.
  private let host: UnsafeMutablePointer<Float>?
  /// A device backend's buffer; nil for a host tensor.
  public let storage: AnyObject?

  /// The host storage. A device tensor has none: reaching for it is a bug of the caller
  /// (only the tensor's backend reads and writes it), and stops the program.
  public var data: UnsafeMutablePointer<Float> {
    guard let host else { preconditionFailure("a device tensor \(shape) has no host memory: read and write it through its Backend") }
    return host
  }

  /// A host tensor, zero-filled.
  public init(shape: [Int]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.shape = shape
    self.capacity = shape.reduce(1, *)
    let bytes = max(capacity, 1) * MemoryLayout<Float>.stride
    let data = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
      .bindMemory(to: Float.self, capacity: max(capacity, 1))
    data.initialize(repeating: 0, count: max(capacity, 1))
    host = data
    storage = nil
  }

  /// A device backend's tensor over `storage` (a buffer of at least `capacity` words).
  public init(shape: [Int], storage: AnyObject) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.shape = shape
    self.capacity = shape.reduce(1, *)
    host = nil
    self.storage = storage
  }

  /// Whether the tensor is host memory (`data` is valid).
  public var isHost: Bool { storage == nil }

  public convenience init(shape: [Int], values: [Float]) {
    self.init(shape: shape)
    precondition(values.count == capacity, "\(values.count) values for shape \(shape)")
    values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: capacity) }
  }

  deinit { if let host { UnsafeMutableRawPointer(host).deallocate() } }

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
