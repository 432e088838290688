#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif
import Foundation

/// A fixed set of worker threads that run chunk i of a job on worker i; the caller runs
/// chunk 0 itself. Unlike `DispatchQueue.concurrentPerform`, handing out a job allocates
/// nothing (the Swift overlay boxes the closure and copies a block on every call, which
/// made a training step allocate ~500 times), so a step stays allocation-free.
final class ThreadPool {
  /// Threads that run chunks, counting the caller.
  let threads: Int
  private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  private let workAvailable = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
  private let workDone = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
  // Guarded by `mutex`.
  private var job: ((Int) -> Void)?
  private var chunks = 0
  private var generation = 0
  private var pending = 0
  private var stopping = false
  private var running = 0

  init(threads: Int) {
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
      pthread_mutex_lock(mutex)
      job = body
      self.chunks = chunks
      pending = chunks - 1
      generation &+= 1
      pthread_cond_broadcast(workAvailable)
      pthread_mutex_unlock(mutex)
      body(0)
      pthread_mutex_lock(mutex)
      while pending > 0 { pthread_cond_wait(workDone, mutex) }
      job = nil
      pthread_mutex_unlock(mutex)
    }
  }

  private func work(as worker: Int) {
    pthread_mutex_lock(mutex)
    running += 1
    pthread_cond_broadcast(workDone)
    // Jobs are numbered from 1; a worker that starts late still runs the current one.
    var seen = 0
    while true {
      while generation == seen && !stopping { pthread_cond_wait(workAvailable, mutex) }
      if stopping { break }
      seen = generation
      guard worker < chunks, let job else { continue }
      pthread_mutex_unlock(mutex)
      job(worker)
      pthread_mutex_lock(mutex)
      pending -= 1
      if pending == 0 { pthread_cond_broadcast(workDone) }
    }
    running -= 1
    pthread_cond_broadcast(workDone)
    pthread_mutex_unlock(mutex)
  }
}
