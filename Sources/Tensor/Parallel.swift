/// Splits work into a fixed number of contiguous chunks, one per thread.
///
/// Chunk boundaries depend only on the amount of work and the thread count, never on
/// timing, and partial results are combined in chunk order: with the same thread count a
/// reduction gives the same bits on every run. The threads are a persistent pool, so
/// splitting work allocates nothing.
public final class Parallel {
  public let threads: Int
  private let pool: ThreadPool

  public init(threads: Int) {
    precondition(threads >= 1, "threads must be at least 1")
    self.threads = threads
    pool = ThreadPool(threads: threads)
  }

  /// The number of chunks `count` items are split into, when each chunk should hold at
  /// least `grain` items.
  @inline(__always)
  public func chunkCount(_ count: Int, grain: Int = 1) -> Int {
    max(1, min(threads, count / max(grain, 1)))
  }

  /// The items of chunk `chunk` out of `chunks`.
  @inline(__always)
  public static func range(chunk: Int, of chunks: Int, count: Int) -> Range<Int> {
    (count * chunk / chunks)..<(count * (chunk + 1) / chunks)
  }

  /// Calls `body(chunk)` for chunks 0..<chunks (at most `threads`), concurrently.
  public func run(chunks: Int, _ body: (_ chunk: Int) -> Void) {
    pool.run(chunks: chunks, body)
  }

  /// Calls `body(chunk, range)` for each chunk of `count` items, concurrently when there
  /// is more than one.
  @inline(__always)
  public func forEachChunk(
    _ count: Int, grain: Int = 1, _ body: (_ chunk: Int, _ range: Range<Int>) -> Void
  ) {
    let chunks = chunkCount(count, grain: grain)
    if chunks == 1 {
      body(0, 0..<count)
      return
    }
    pool.run(chunks: chunks) { chunk in
      body(chunk, Parallel.range(chunk: chunk, of: chunks, count: count))
    }
  }
}
