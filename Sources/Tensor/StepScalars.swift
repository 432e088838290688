/// One 32-bit word of a backend tensor that an operation reads when it runs, not when it
/// is called: how a value that changes from step to step (the learning rate, Adam's bias
/// corrections, the random stream of the step's dropout) reaches an operation. A step
/// recorded once (`Backend.record`, a CUDA graph) keeps every argument it was called with,
/// so such a value must be read from memory that is written before each replay.
public struct DeviceScalar {
  public let tensor: Tensor
  public let index: Int

  public init(_ tensor: Tensor, index: Int) {
    precondition(index >= 0 && index < tensor.capacity, "word \(index) of a tensor of \(tensor.capacity)")
    self.tensor = tensor
    self.index = index
  }

  /// The word as a float, on a host tensor (the CPU backend's reading of it).
  public var hostValue: Float { tensor.data[index] }
  /// The word's bits, on a host tensor (a random stream's coordinate).
  public var hostBits: UInt32 { tensor.data[index].bitPattern }
}

/// A few per-step values in one small tensor of a backend, written together (one upload)
/// before the step's operations are called or its recording replayed. The host keeps the
/// values too, so writing them costs no read-back.
public final class StepScalars {
  public let backend: Backend
  public let tensor: Tensor
  private var values: [Float]

  /// `count` words, all zero.
  public init(count: Int, backend: Backend) {
    self.backend = backend
    tensor = backend.makeTensor(shape: [count])
    values = [Float](repeating: 0, count: count)
  }

  public subscript(index: Int) -> DeviceScalar { DeviceScalar(tensor, index: index) }

  /// Sets word `index` on the host; `write` sends the words to the backend.
  public func set(_ index: Int, to value: Float) { values[index] = value }
  public func set(_ index: Int, bits: UInt32) { values[index] = Float(bitPattern: bits) }

  /// Sends every word to the backend (an upload: never inside a recording).
  public func write() { values.withUnsafeBufferPointer { backend.upload($0, to: tensor, offset: 0) } }
}

/// Operations recorded once and replayed as one unit (`Backend.record`): a CUDA graph of
/// a whole training step. Only the backend that recorded it can replay it.
public protocol RecordedOperations: AnyObject {}
