import Foundation
import Tensor
import XCTest

/// The thread pool behind every kernel: each chunk of each job runs exactly once, on the
/// job it belongs to, whether the workers are spinning (jobs back to back) or asleep (jobs
/// far apart), with fewer chunks than threads, and pools come and go without hanging.
final class ParallelTests: XCTestCase {
  /// 20,000 jobs back to back, chunk counts cycling through 1…threads: every chunk ran
  /// once and saw its own job's data (a worker that read the next job's closure, or ran a
  /// chunk twice, breaks the counts).
  func testEveryChunkOfEveryJobRunsOnceWhileTheWorkersSpin() {
    for threads in [2, 3, 5] {
      let parallel = Parallel(threads: threads)
      let runs = UnsafeMutablePointer<Int>.allocate(capacity: threads)
      let stamp = UnsafeMutablePointer<Int>.allocate(capacity: threads)
      defer {
        runs.deallocate()
        stamp.deallocate()
      }
      for job in 0..<20_000 {
        let chunks = 1 + job % threads
        runs.initialize(repeating: 0, count: threads)
        stamp.initialize(repeating: -1, count: threads)
        parallel.run(chunks: chunks) { chunk in
          runs[chunk] += 1
          stamp[chunk] = job
        }
        for chunk in 0..<threads {
          XCTAssertEqual(runs[chunk], chunk < chunks ? 1 : 0, "job \(job), chunk \(chunk) of \(chunks), \(threads) threads")
          XCTAssertEqual(stamp[chunk], chunk < chunks ? job : -1)
        }
      }
    }
  }

  /// Jobs 5 ms apart: the workers have stopped spinning and sleep; each job still wakes
  /// them and every chunk runs. A chunk that outlasts the caller's spin makes the caller
  /// sleep until the last worker signals.
  func testJobsFarApartWakeSleepingWorkersAndASlowChunkWakesTheCaller() {
    let parallel = Parallel(threads: 3)
    for job in 0..<20 {
      usleep(5_000)
      let total = Counter(0)
      parallel.run(chunks: 3) { chunk in
        if chunk == 2 && job % 2 == 0 { usleep(20_000) }
        total.add(1 << (chunk * 8))
      }
      XCTAssertEqual(total.value, 1 | 1 << 8 | 1 << 16, "job \(job)")
    }
  }

  /// `forEachChunk` hands every item to exactly one chunk, for counts below, at and above
  /// the thread count.
  func testForEachChunkCoversTheRangeInOrder() {
    let parallel = Parallel(threads: 2)
    for count in [1, 2, 3, 1_000, 1_001] {
      let seen = UnsafeMutablePointer<Int>.allocate(capacity: count)
      seen.initialize(repeating: 0, count: count)
      parallel.forEachChunk(count) { _, range in for i in range { seen[i] += 1 } }
      XCTAssertEqual((0..<count).filter { seen[$0] != 1 }, [], "count \(count)")
      seen.deallocate()
    }
  }

  /// A thousand pools made, used once and dropped, some while their workers spin and some
  /// while they sleep: none hangs (the test would time out) and none leaks a running job.
  func testPoolsStopWhetherTheirWorkersSpinOrSleep() {
    for round in 0..<1_000 {
      let parallel = Parallel(threads: 2)
      let total = Counter(0)
      parallel.run(chunks: 2) { _ in total.add(1) }
      XCTAssertEqual(total.value, 2)
      if round % 100 == 0 { usleep(2_000) }
    }
  }
}

/// A counter the chunks of one job add to from several threads.
private final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Int
  init(_ value: Int) { stored = value }
  func add(_ amount: Int) { lock.lock(); stored += amount; lock.unlock() }
  var value: Int { lock.lock(); defer { lock.unlock() }; return stored }
}
