import Foundation
import Wire

/// A worker's loop: a DEALER socket, one task at a time on its own thread, heartbeats from
/// this loop (which training never blocks), reconnection with backoff when the
/// coordinator falls silent.
public final class Worker {
  /// Runs a task and returns its result tensors; reports progress through the callback.
  public typealias Runner = (TaskAssignment, _ progress: @escaping (ProgressReport) -> Void) throws -> [WireTensor]

  public let name: String
  let endpoint: String
  let context: ZeroMQContext
  let timing: Timing
  let runner: Runner
  let hello: Hello
  let log: (String) -> Void

  // Shared with the task thread, behind `lock`.
  private let lock = NSLock()
  private var outbox: [Message] = []
  private var running: TaskAssignment?
  /// A lease received while busy (after a reconnect the coordinator may hand out a task
  /// before the old one ends): it starts when the current task finishes.
  private var queued: TaskAssignment?

  public init(
    name: String, endpoint: String, context: ZeroMQContext, timing: Timing = Timing(), devices: [String] = ["cpu"],
    threads: Int = 1, log: @escaping (String) -> Void = { _ in }, runner: @escaping Runner
  ) {
    self.name = name
    self.endpoint = endpoint
    self.context = context
    self.timing = timing
    self.runner = runner
    self.log = log
    hello = Hello(worker: name, version: "0.1.0", devices: devices, threads: threads)
  }

  /// Works until the coordinator says the experiment is finished (or `stop` says so).
  public func run(stop: () -> Bool = { false }) throws {
    var backoff = timing.reconnectInitial
    while !stop() {
      let socket = try ZeroMQSocket(.dealer, context: context, identity: name)
      try socket.connect(endpoint)
      try socket.send(try Framing.encode(.hello(hello)))
      var lastHeard = Date().timeIntervalSince1970
      var lastSent = 0.0
      while !stop() {
        let now = Date().timeIntervalSince1970
        if let frames = try socket.receive(timeout: timing.heartbeatInterval / 4) {
          lastHeard = now
          backoff = timing.reconnectInitial
          switch try? Framing.decode(frames) {
          case .task(let task): start(task)
          case .disconnect(let reason):
            log("coordinator: \(reason)")
            return
          case .reject(let reason): throw WorkerError("the coordinator refused this worker: \(reason)")
          case .heartbeat, .acknowledgement, .none: break
          default: break
          }
        }
        // What the task thread produced: progress, then the result.
        lock.lock()
        let pending = outbox
        outbox.removeAll()
        lock.unlock()
        for message in pending { try socket.send(try Framing.encode(message)) }
        if now - lastSent >= timing.heartbeatInterval {
          try socket.send(try Framing.encode(.heartbeat))
          lastSent = now
        }
        if now - lastHeard > timing.leaseDuration {
          log("coordinator silent for \(Int(now - lastHeard)) s: reconnecting in \(Int(backoff)) s")
          break
        }
      }
      if stop() { return }
      Thread.sleep(forTimeInterval: backoff)
      backoff = min(backoff * 2, timing.reconnectMaximum)
    }
  }

  private func start(_ task: TaskAssignment) {
    lock.lock()
    defer { lock.unlock() }
    // One task at a time: a second lease waits for the first to end.
    guard running == nil else {
      queued = task
      return
    }
    running = task
    let thread = Thread { [self] in
      let post: (Message) -> Void = { message in
        self.lock.lock()
        self.outbox.append(message)
        self.lock.unlock()
      }
      do {
        let tensors = try runner(task) { post(.progress($0)) }
        post(.result(TaskResult(task: task.task, attempt: task.attempt, tensors: tensors)))
      } catch {
        // The lease goes back (an attempt used); then this worker joins again.
        log("task \(task.task) failed: \(error)")
        post(.disconnect(reason: "task \(task.task) failed: \(error)"))
        post(.hello(hello))
      }
      self.lock.lock()
      self.running = nil
      let next = self.queued
      self.queued = nil
      self.lock.unlock()
      if let next { self.start(next) }
    }
    thread.name = "quorum-task"
    thread.start()
  }
}

public struct WorkerError: Error, CustomStringConvertible {
  public let description: String
  init(_ description: String) { self.description = description }
}
