/// The CPU backend's buffers are host memory: tensors are made with `Tensor(shape:)`, the
/// transfers are copies (none at all for staging: the data pipeline writes straight into
/// the model's input), and nothing is asynchronous.
extension CPUBackend {
  public func makeTensor(shape: [Int]) -> Tensor { Tensor(shape: shape) }

  public func upload(_ values: UnsafeBufferPointer<Float>, to tensor: Tensor, offset: Int) {
    precondition(offset >= 0 && offset + values.count <= tensor.capacity, "\(values.count) values at \(offset) into \(tensor.capacity)")
    guard let base = values.baseAddress else { return }
    (tensor.data + offset).update(from: base, count: values.count)
  }

  public func uploadLabels(_ labels: UnsafeBufferPointer<Int32>, to tensor: Tensor) {
    precondition(labels.count <= tensor.capacity, "\(labels.count) labels into \(tensor.capacity) words")
    guard let base = labels.baseAddress else { return }
    UnsafeMutableRawPointer(tensor.data).copyMemory(from: base, byteCount: labels.count * 4)
  }

  public func download(_ tensor: Tensor, offset: Int, into values: UnsafeMutableBufferPointer<Float>) {
    precondition(offset >= 0 && offset + values.count <= tensor.capacity, "\(values.count) values at \(offset) from \(tensor.capacity)")
    guard let base = values.baseAddress else { return }
    base.update(from: tensor.data + offset, count: values.count)
  }

  public func fill(_ tensor: Tensor, with value: Float, count: Int) { tensor.data.update(repeating: value, count: count) }

  public func copy(_ source: Tensor, offset sourceOffset: Int, to destination: Tensor, offset destinationOffset: Int, count: Int) {
    precondition(sourceOffset >= 0 && destinationOffset >= 0 && sourceOffset + count <= source.capacity && destinationOffset + count <= destination.capacity)
    (destination.data + destinationOffset).update(from: source.data + sourceOffset, count: count)
  }

  public func staging(for tensor: Tensor) -> Tensor { tensor }

  /// The host assembles the CPU's batches in place (BatchAssembler, on its own threads).
  public func holdImages(_ pixels: UnsafeBufferPointer<UInt8>) -> Tensor? { nil }

  public func assembleImages(
    from held: Tensor, plan: Tensor, batch: Int, height: Int, width: Int, channels: Int, normalization: Tensor, images: Tensor
  ) {
    preconditionFailure("the CPU backend holds no images (holdImages is nil): its batches are assembled on the host")
  }

  public func commit(staging: Tensor, to tensor: Tensor, count: Int) {
    if staging !== tensor { copy(staging, to: tensor, count: count) }
  }

  public func synchronize() {}

  /// Nothing to record: an operation on the CPU costs no launch, so the caller calls them.
  public func record(_ body: () -> Void) -> RecordedOperations? { nil }

  public func replay(_ recording: RecordedOperations) {
    preconditionFailure("the CPU backend records nothing, so it has nothing to replay")
  }

  /// The CPU's operations cannot fail after their preconditions.
  public func check() throws {}

  /// The labels of an int32 tensor, as the CPU kernels read them.
  func labelPointer(_ tensor: Tensor) -> UnsafePointer<Int32> {
    UnsafePointer(UnsafeRawPointer(tensor.data).assumingMemoryBound(to: Int32.self))
  }

  public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: Tensor, lda: Int, b: Tensor, ldb: Int, beta: Float,
    c: Tensor, ldc: Int
  ) {
    gemm(
      transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.data, lda: lda, b: b.data, ldb: ldb, beta: beta,
      c: c.data, ldc: ldc)
  }
}
