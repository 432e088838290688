import Foundation

/// A device's memory as its buffers see it: a caching allocator. A freed buffer's block is
/// kept, by size, for the next buffer of that size, instead of going back through
/// `cuMemFree`, which waits for the whole GPU: with several members on one GPU, a member
/// ending its task and freeing its hundreds of buffers would stall every other member's
/// stream. A worker's backend trains task after task of the same model, so from its second
/// task on, it allocates nothing at all.
///
/// One cache per `CUDADevice`, so per stream: a block is reused on the stream that last
/// used it, in order, as PyTorch's caching allocator does. Out of memory, every cache of
/// that GPU gives its blocks back and the allocation is tried once more. On the emulated
/// device a cached block is filled with NaN, so a kernel reading a buffer after it was
/// freed reads NaN, as it reads NaN from a fresh one.
final class DeviceMemory: @unchecked Sendable {
  let driver: CUDADriverAPI
  let ordinal: Int
  private let context: CUDADriverAPI.Context
  private let stream: CUDADriverAPI.Stream
  /// Whether freed blocks are kept (off: every buffer is cuMemAlloc'd and cuMemFree'd,
  /// which the emulator's use-after-free check needs).
  let caches: Bool
  private let lock = NSLock()
  private var cached: [Int: [CUDADriverAPI.Address]] = [:]
  private(set) var liveBytes = 0
  private(set) var cachedBytes = 0
  private(set) var allocationCount = 0

  init(driver: CUDADriverAPI, ordinal: Int, context: CUDADriverAPI.Context, stream: CUDADriverAPI.Stream, caches: Bool) {
    (self.driver, self.ordinal, self.context, self.stream, self.caches) = (driver, ordinal, context, stream, caches)
    Self.registry.add(self)
  }

  deinit {
    releaseCache()
    Self.registry.remove(self)
  }

  /// A block of `bytes`: a cached one of that size, else a new one.
  func allocate(bytes: Int) throws -> CUDADriverAPI.Address {
    lock.lock()
    if let address = cached[bytes]?.popLast() {
      cachedBytes -= bytes
      liveBytes += bytes
      lock.unlock()
      return address
    }
    lock.unlock()
    try driver.ensureCurrent(context)
    let address: CUDADriverAPI.Address
    do {
      address = try driver.allocate(bytes: bytes)
    } catch let error as CUDAError {
      // Out of memory: what the caches on this GPU hold goes back, and it is tried again.
      guard case .call(_, 2, _, _) = error, Self.registry.releaseCaches(of: ordinal, emulated: driver.isEmulated) > 0 else { throw error }
      try driver.ensureCurrent(context)
      address = try driver.allocate(bytes: bytes)
    }
    lock.lock()
    liveBytes += bytes
    allocationCount += 1
    lock.unlock()
    return address
  }

  /// A buffer's block, no longer used: kept for the next buffer of its size.
  func release(_ address: CUDADriverAPI.Address, bytes: Int) {
    try? driver.ensureCurrent(context)
    if caches && driver.isEmulated { try? driver.fill(address, words: Float.nan.bitPattern, count: bytes / 4, stream: stream) }
    lock.lock()
    liveBytes -= bytes
    if caches {
      cached[bytes, default: []].append(address)
      cachedBytes += bytes
      lock.unlock()
      return
    }
    lock.unlock()
    try? driver.free(address)
  }

  /// Frees every cached block; returns the bytes freed.
  @discardableResult
  func releaseCache() -> Int {
    lock.lock()
    let blocks = cached
    cached.removeAll()
    let bytes = cachedBytes
    cachedBytes = 0
    lock.unlock()
    guard bytes > 0 else { return 0 }
    try? driver.ensureCurrent(context)
    for address in blocks.values.joined() { try? driver.free(address) }
    return bytes
  }

  /// Every live allocator, so that one out of memory can empty the caches of the others on
  /// its GPU (each member's backend has its own).
  static let registry = Registry()

  final class Registry: @unchecked Sendable {
    private struct Entry { weak var memory: DeviceMemory? }
    private let lock = NSLock()
    private var members: [ObjectIdentifier: Entry] = [:]

    func add(_ memory: DeviceMemory) {
      lock.lock()
      members[ObjectIdentifier(memory)] = Entry(memory: memory)
      lock.unlock()
    }

    func remove(_ memory: DeviceMemory) {
      lock.lock()
      members[ObjectIdentifier(memory)] = nil
      lock.unlock()
    }

    /// Empties the caches of every allocator on GPU `ordinal` (of the emulated driver or
    /// the machine's); the bytes freed.
    func releaseCaches(of ordinal: Int, emulated: Bool) -> Int {
      lock.lock()
      let found = members.values.compactMap(\.memory).filter { $0.ordinal == ordinal && $0.driver.isEmulated == emulated }
      lock.unlock()
      return found.reduce(0) { $0 + $1.releaseCache() }
    }
  }
}
