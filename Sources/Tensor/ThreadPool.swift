#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import Foundation
import Synchronization

/// A fixed set of worker threads that run chunk i of a job on worker i; the caller runs
/// chunk 0 itself. Unlike `DispatchQueue.concurrentPerform`, handing out a job allocates
/// nothing (the Swift overlay boxes the closure and copies a block on every call, which
/// made a training step allocate ~500 times), so a step stays allocation-free.
///
/// A training step hands out several hundred jobs, most of them a few tens of
/// microseconds long, with a little serial work between them. Waking a sleeping thread
/// through the kernel costs about as much as such a job (a profile of `quorum bench step`
/// put 17 % of the process's time in the scheduler's wake-up and futex paths), so both
/// sides spin first: a worker watches for the next job for about `spinLimit` polls before
/// it sleeps on the condition variable, and the caller watches its workers finish the same
/// way. Sleeping stays the fallback, so an idle pool costs nothing. On the 2-vCPU
/// benchmark machine `quorum bench step` went from 2,074–2,294 images/s (always sleeping)
/// to 2,676–2,803 with 2¹⁴ polls, 2,899–3,044 with 2¹⁶ and 2,865–3,136 with 2¹⁸,
/// alternated four times: 2¹⁶ it is.
final class ThreadPool {
  /// Threads that run chunks, counting the caller.
  let threads: Int

  /// The job's number and its chunk count in one word (`number << chunkBits | chunks`):
  /// a worker reads both at once, so a worker with no chunk in this job never touches
  /// `job`, and the caller cannot hand out the next job while a worker still reads this one.
  private let announced = Atomic<Int>(0)
  /// Workers yet to finish the current job's chunks.
  private let pending = Atomic<Int>(0)
  /// Written by the caller before it announces a job, read by workers after they see it.
  nonisolated(unsafe) private var job: ((Int) -> Void)?

  // The sleeping side, guarded by `mutex`.
  private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  private let workAvailable = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
  private let workDone = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
  nonisolated(unsafe) private var sleepingWorkers = 0
  nonisolated(unsafe) private var callerSleeping = false
  nonisolated(unsafe) private var stopping = false
  nonisolated(unsafe) private var running = 0

  private static let chunkBits = 10
  private static let chunkMask = (1 << chunkBits) - 1
  /// Polls before sleeping: longer than most gaps between two jobs of a step, short
  /// enough that a pool between steps (or between epochs, while the data is prepared)
  /// yields its cores almost at once.
  private static let spinLimit = 1 << 16

  init(threads: Int) {
    precondition(threads <= ThreadPool.chunkMask, "at most \(ThreadPool.chunkMask) threads")
    self.threads = threads
    pthread_mutex_init(mutex, nil)
    pthread_cond_init(workAvailable, nil)
    pthread_cond_init(workDone, nil)
    for worker in 1..<max(threads, 1) {
      let thread = Thread { [unowned self] in self.work(as: worker) }
      thread.name = "quorum-worker-\(worker)"
      thread.start()
    }
    // Wait until every worker is inside its loop, so `deinit` can count on them.
    pthread_mutex_lock(mutex)
    while running < threads - 1 { pthread_cond_wait(workDone, mutex) }
    pthread_mutex_unlock(mutex)
  }

  deinit {
    pthread_mutex_lock(mutex)
    stopping = true
    pthread_cond_broadcast(workAvailable)
    while running > 0 { pthread_cond_wait(workDone, mutex) }
    pthread_mutex_unlock(mutex)
    pthread_mutex_destroy(mutex)
    pthread_cond_destroy(workAvailable)
    pthread_cond_destroy(workDone)
    mutex.deallocate()
    workAvailable.deallocate()
    workDone.deallocate()
  }

  /// Runs body(0) … body(chunks − 1) concurrently (chunks ≤ threads) and returns when all
  /// have finished.
  func run(chunks: Int, _ body: (Int) -> Void) {
    precondition(chunks >= 1 && chunks <= threads, "\(chunks) chunks for \(threads) threads")
    if chunks == 1 { return body(0) }
    withoutActuallyEscaping(body) { body in
      job = body
      pending.store(chunks - 1, ordering: .relaxed)
      let number = (announced.load(ordering: .relaxed) >> ThreadPool.chunkBits) &+ 1
      // Releasing: a worker that sees the new word sees `job` and `pending` too.
      announced.store(number << ThreadPool.chunkBits | chunks, ordering: .sequentiallyConsistent)
      pthread_mutex_lock(mutex)
      if sleepingWorkers > 0 { pthread_cond_broadcast(workAvailable) }
      pthread_mutex_unlock(mutex)
      body(0)
      if !finishedWithinSpin() {
        pthread_mutex_lock(mutex)
        callerSleeping = true
        while pending.load(ordering: .acquiring) > 0 { pthread_cond_wait(workDone, mutex) }
        callerSleeping = false
        pthread_mutex_unlock(mutex)
      }
      job = nil
    }
  }

  private func finishedWithinSpin() -> Bool {
    for _ in 0..<ThreadPool.spinLimit where pending.load(ordering: .acquiring) == 0 { return true }
    return false
  }

  private func work(as worker: Int) {
    pthread_mutex_lock(mutex)
    running += 1
    pthread_cond_broadcast(workDone)
    pthread_mutex_unlock(mutex)
    // Jobs are numbered from 1: a worker that starts after the first job was announced
    // still runs it.
    var seen = 0
    while let word = nextJob(after: seen) {
      seen = word
      guard worker < word & ThreadPool.chunkMask else { continue }
      runChunk(worker)
      if pending.wrappingSubtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
        // The caller may have gone to sleep: it checks `pending` under the mutex, so
        // taking it here means it either saw zero or is waiting to be signalled.
        pthread_mutex_lock(mutex)
        if callerSleeping { pthread_cond_signal(workDone) }
        pthread_mutex_unlock(mutex)
      }
    }
    pthread_mutex_lock(mutex)
    running -= 1
    pthread_cond_broadcast(workDone)
    pthread_mutex_unlock(mutex)
  }

  /// Its own function so that the worker's reference to the job ends before `pending`
  /// tells the caller it may return (`withoutActuallyEscaping` checks that none is left).
  @inline(never) private func runChunk(_ worker: Int) { job?(worker) }

  /// The next announced word after `seen`, polled for a while and then waited for;
  /// nil when the pool is stopping.
  private func nextJob(after seen: Int) -> Int? {
    for _ in 0..<ThreadPool.spinLimit {
      let word = announced.load(ordering: .acquiring)
      if word != seen { return word }
    }
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    sleepingWorkers += 1
    defer { sleepingWorkers -= 1 }
    while true {
      if stopping { return nil }
      let word = announced.load(ordering: .acquiring)
      if word != seen { return word }
      pthread_cond_wait(workAvailable, mutex)
    }
  }
}
