import Cluster
import Data
import Files
import Foundation
import QuorumTestSupport
import Wire
import XCTest

/// The coordinator's protocol over the in-memory transport: a turn at a time under a clock
/// the test sets, or the real loops of a coordinator and its workers on their threads. No
/// socket, no port, no sleep. (The loopback tests keep the real thing.)
final class InMemoryCoordinatorTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  /// The test's clock, in seconds.
  final class Clock: @unchecked Sendable { var now = 1_000.0 }

  func hello(_ name: String, running: [String: Int] = [:]) -> Message {
    .hello(Hello(worker: name, version: "0.1.0", devices: ["cpu"], threads: 1, running: running))
  }

  func result(_ task: String, attempt: Int) -> Message {
    .result(TaskResult(task: task, attempt: attempt, tensors: [WireTensor(name: "oof", shape: [1, 2], values: [0.25, 0.75])]))
  }

  /// Turns until `identity` has been sent a message that `match` picks out, for up to 10 s
  /// (a result is decoded off the loop's thread: its acknowledgement comes a turn or more
  /// later, and a turn waits at most a millisecond for a message).
  func turnUntil<T>(_ coordinator: Coordinator, _ router: InMemoryRouter, _ identity: String, _ match: (Message) -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(10)
    while Date() < deadline {
      try coordinator.turn(timeout: 0.001)
      for message in try router.take(for: identity) { if let found = match(message) { return found } }
    }
    throw NoSuchMessage(identity: identity)
  }

  /// A lease whose worker falls silent expires on the clock alone; the task goes to the
  /// next worker as attempt 2; the silent worker's late result of attempt 1 is
  /// acknowledged but not stored; attempt 2's result is stored and ends the experiment.
  /// The journal says so in that order.
  func testASilentWorkersLeaseExpiresItsLateResultIsDiscardedAndTheNextWorkerFinishes() throws {
    let clock = Clock()
    let router = InMemoryRouter()
    let journalPath = folder + "/journal.jsonl"
    let timing = Timing()  // 1 s heartbeats, 4 missed: a lease of 4 s
    let coordinator = Coordinator(
      socket: router, scheduler: Scheduler(tasks: ["only"], timing: timing, journal: try Journal(path: journalPath)),
      settings: ["only": "{}"], store: ResultStore(runDirectory: folder), clock: { clock.now })
    coordinator.contract = { _ in ResultContract(tensors: ["oof": [1, 2]], files: [:]) }
    let (first, second) = ("first#0000000000000001", "second#0000000000000002")

    try router.deliver(hello("first"), from: first)
    let lease = try turnUntil(coordinator, router, first) { if case .task(let task) = $0 { return task }; return nil }
    XCTAssertEqual(lease.task, "only")
    XCTAssertEqual(lease.attempt, 1)

    // Four seconds of silence (no heartbeat): the lease and the worker are gone.
    clock.now += timing.leaseDuration + 0.5
    try coordinator.turn(timeout: 0)
    XCTAssertEqual(coordinator.counters.leasesExpired, 1)
    XCTAssertEqual(coordinator.scheduler.states["only"], .pending(attemptsUsed: 1))

    try router.deliver(hello("second"), from: second)
    let retry = try turnUntil(coordinator, router, second) { if case .task(let task) = $0 { return task }; return nil }
    XCTAssertEqual(retry.attempt, 2)

    // The first worker comes back with its stale result.
    try router.deliver(result("only", attempt: 1), from: first)
    let late = try turnUntil(coordinator, router, first) { if case .acknowledgement(let a) = $0 { return a }; return nil }
    XCTAssertEqual(late, Acknowledgement(task: "only", attempt: 1, stored: false))

    try router.deliver(result("only", attempt: 2), from: second)
    let stored = try turnUntil(coordinator, router, second) { if case .acknowledgement(let a) = $0 { return a }; return nil }
    XCTAssertEqual(stored, Acknowledgement(task: "only", attempt: 2, stored: true))
    XCTAssert(coordinator.isDone)
    coordinator.finish()
    XCTAssertEqual(try router.take(for: second), [.disconnect(reason: "experiment finished")])

    XCTAssertEqual(try NumPy.readFloat32(folder + "/logits/only.oof.npy").values, [0.25, 0.75])
    let events = try Journal.read(journalPath).map { "\($0.kind.rawValue) \($0.attempt)" + ($0.worker.map { " " + $0 } ?? "") }
    XCTAssertEqual(events, ["leased 1 first", "expired 1 first", "leased 2 second", "stored 2"])
  }

  /// The real coordinator and worker loops, each on its thread, over the in-memory
  /// transport: two workers of two slots each train six tasks, reporting progress; every
  /// task is stored once with its worker's logits, and both workers leave when told the
  /// experiment is finished. No socket is opened.
  func testTheCoordinatorAndWorkerLoopsRunAnExperimentInMemory() throws {
    let router = InMemoryRouter()
    let tasks = (0..<6).map { "t\($0)" }
    let journalPath = folder + "/journal.jsonl"
    let coordinator = Coordinator(
      socket: router, scheduler: Scheduler(tasks: tasks, journal: try Journal(path: journalPath)),
      settings: Dictionary(uniqueKeysWithValues: tasks.map { ($0, "{}") }), store: ResultStore(runDirectory: folder))
    coordinator.contract = { _ in ResultContract(tensors: ["oof": [1, 2]], files: [:]) }
    let heard = Lines()
    coordinator.onProgress = { heard.append($0.task) }
    // Threads of their own (GCD's pool would not grow past a loop blocked in a wait).
    let group = DispatchGroup()
    func start(_ body: @escaping () -> Void) {
      group.enter()
      Thread {
        body()
        group.leave()
      }.start()
    }
    start { try? coordinator.run() }
    let left = Lines()
    for name in ["a", "b"] {
      let worker = Worker(name: name, transport: router, slots: 2, log: { left.append("\(name): \($0)") }) { task, progress in
        progress(ProgressReport(task: task.task, attempt: task.attempt, epoch: 1, loss: 0.5, validationMetric: nil, imagesPerSecond: 100))
        return TaskOutput(tensors: [WireTensor(name: "oof", shape: [1, 2], values: [Float(task.task.dropFirst())!, 1])])
      }
      start { try? worker.run() }
    }
    XCTAssertEqual(group.wait(timeout: .now() + 60), .success, "the coordinator and both workers return")
    for (index, task) in tasks.enumerated() {
      XCTAssertEqual(try NumPy.readFloat32(folder + "/logits/\(task).oof.npy").values, [Float(index), 1])
    }
    let stored = try Journal.read(journalPath).filter { $0.kind == .stored }.map(\.task)
    XCTAssertEqual(stored.sorted(), tasks, "each task stored once")
    XCTAssertEqual(Set(heard.all), Set(tasks), "every task's progress reached the coordinator")
    XCTAssertEqual(left.all.filter { $0.hasSuffix("coordinator: experiment finished") }.count, 2, left.all.joined(separator: "\n"))
  }

  /// A worker that says hello again (it restarted) without a lease it held gets that lease
  /// taken back at once, not at expiry, and leased to it anew as the next attempt.
  func testAWorkerThatRestartedWithoutItsLeaseGetsTheTaskAgainAtOnce() throws {
    let clock = Clock()
    let router = InMemoryRouter()
    let coordinator = Coordinator(
      socket: router, scheduler: Scheduler(tasks: ["only"], journal: try Journal(path: folder + "/journal.jsonl")),
      settings: ["only": "{}"], store: ResultStore(runDirectory: folder), clock: { clock.now })
    let worker = "w#00000000000000aa"
    try router.deliver(hello("w"), from: worker)
    let lease = try turnUntil(coordinator, router, worker) { if case .task(let task) = $0 { return task }; return nil }
    XCTAssertEqual(lease.attempt, 1)
    clock.now += 0.5
    try router.deliver(hello("w", running: [:]), from: worker)
    let again = try turnUntil(coordinator, router, worker) { if case .task(let task) = $0 { return task }; return nil }
    XCTAssertEqual(again.attempt, 2)
    XCTAssertEqual(coordinator.counters.leasesExpired, 0, "given back at the hello, not expired")
  }
}

/// The coordinator never sent the message a test waited for.
struct NoSuchMessage: Error, CustomStringConvertible {
  var identity: String
  var description: String { "no such message to \(identity) within 10 s" }
}
