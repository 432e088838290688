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

  /// A second process under a connected name takes the name over by its hello; the
  /// lease the first held goes back and is leased to the second as attempt 2; the first,
  /// at its next heartbeat and with its late result, is refused with the fix; the
  /// coordinator logs the clash; the second finishes every task. (Was a loopback test that
  /// slept in each task so the twins would overlap.)
  func testTwoWorkersUnderOneNameAreBothToldAndTheSecondFinishes() throws {
    let clock = Clock()
    let router = InMemoryRouter()
    let lines = Lines()
    let journalPath = folder + "/journal.jsonl"
    let coordinator = Coordinator(
      socket: router, scheduler: Scheduler(tasks: ["a", "b", "c"], journal: try Journal(path: journalPath)),
      settings: ["a": "{}", "b": "{}", "c": "{}"], store: ResultStore(runDirectory: folder), clock: { clock.now },
      log: { lines.append($0) })
    coordinator.contract = { _ in ResultContract(tensors: ["oof": [1, 2]], files: [:]) }
    let (first, second) = ("twin#0000000000000001", "twin#0000000000000002")
    // What each twin was sent and has not read yet (a lease may come in one turn with the
    // acknowledgement before it).
    var unread: [String: [Message]] = [:]
    func read<T>(_ identity: String, _ match: (Message) -> T?) throws -> T {
      let deadline = Date().addingTimeInterval(10)
      while Date() < deadline {
        if let index = unread[identity, default: []].firstIndex(where: { match($0) != nil }) {
          return match(unread[identity]!.remove(at: index))!
        }
        try coordinator.turn(timeout: 0.001)
        unread[identity, default: []] += try router.take(for: identity)
      }
      throw NoSuchMessage(identity: identity)
    }
    func lease(_ identity: String) throws -> TaskAssignment { try read(identity) { if case .task(let task) = $0 { return task }; return nil } }
    func refusal(_ identity: String) throws -> String { try read(identity) { if case .reject(let reason) = $0 { return reason }; return nil } }

    try router.deliver(hello("twin"), from: first)
    let held = try lease(first)
    XCTAssertEqual(held.attempt, 1)
    try router.deliver(hello("twin"), from: second)
    let taken = try lease(second)
    XCTAssertEqual(taken.task, held.task, "the first's lease went back and came to the second")
    XCTAssertEqual(taken.attempt, 2)

    try router.deliver(.heartbeat, from: first)
    XCTAssert(try refusal(first).contains("give each worker its own --name"))
    try router.deliver(result(held.task, attempt: 1), from: first)
    XCTAssert(try refusal(first).contains("took it over"))

    var next: TaskAssignment? = taken
    while let task = next {
      try router.deliver(result(task.task, attempt: task.attempt), from: second)
      let stored = try read(second) { if case .acknowledgement(let a) = $0 { return a }; return nil }
      XCTAssert(stored.stored, "\(task.task) stored")
      next = coordinator.isDone ? nil : try lease(second)
    }
    XCTAssert(coordinator.isDone)
    let stored = try Journal.read(journalPath).filter { $0.kind == .stored }
    XCTAssertEqual(stored.map(\.task).sorted(), ["a", "b", "c"])
    XCTAssertEqual(stored.first { $0.task == held.task }?.attempt, 2, "the first twin's late result was not stored")
    XCTAssert(lines.all.contains { $0.contains("two worker processes use the name \"twin\"") }, lines.all.joined(separator: "\n"))
    XCTAssert(lines.all.contains { $0.contains("worker twin connected from a new process") }, lines.all.joined(separator: "\n"))
  }

  /// A result is decoded and checked off the coordinator's loop: while one result's check
  /// is held (a large checkpoint, a slow disk), turns go on returning, the other worker's
  /// heartbeats keep its lease alive past three lease durations, and both tasks are stored
  /// by their first attempts once the check is let go. (Was a loopback test of 3 s and 2 s
  /// sleeps.)
  func testAHeldResultCheckDoesNotStallTheLoop() throws {
    let clock = Clock()
    let router = InMemoryRouter()
    let timing = Timing()
    let coordinator = Coordinator(
      socket: router, scheduler: Scheduler(tasks: ["quick", "long"], timing: timing, journal: try Journal(path: folder + "/journal.jsonl")),
      settings: ["quick": "{}", "long": "{}"], store: ResultStore(runDirectory: folder), clock: { clock.now })
    let check = HeldCheck()
    coordinator.contract = { task in
      ResultContract(tensors: ["oof": [1, 2]], files: [:]) { _ in if task == "quick" { check.hold() } }
    }
    var holders: [String: String] = [:]
    for (name, identity) in [("a", "a#000000000000000a"), ("b", "b#000000000000000b")] {
      try router.deliver(hello(name), from: identity)
      let task = try turnUntil(coordinator, router, identity) { if case .task(let task) = $0 { return task }; return nil }
      holders[task.task] = identity
    }
    let (quick, long) = (try XCTUnwrap(holders["quick"]), try XCTUnwrap(holders["long"]))

    try router.deliver(result("quick", attempt: 1), from: quick)
    let deadline = Date().addingTimeInterval(10)
    while !check.isHeld && Date() < deadline { try coordinator.turn(timeout: 0.001) }
    XCTAssert(check.isHeld, "the check started")
    // Three lease durations of heartbeats, a turn after each, with the check still held.
    for _ in 0..<Int(3 * timing.leaseDuration / 0.5) {
      clock.now += 0.5
      for identity in [quick, long] { try router.deliver(.heartbeat, from: identity) }
      try coordinator.turn(timeout: 0)
    }
    XCTAssert(check.isHeld, "every turn returned while the check was held")
    XCTAssertEqual(coordinator.counters.leasesExpired, 0)
    XCTAssertEqual(coordinator.counters.workersLost, 0)

    try router.deliver(result("long", attempt: 1), from: long)
    check.release()
    for identity in [quick, long] {
      let acknowledged = try turnUntil(coordinator, router, identity) { if case .acknowledgement(let a) = $0 { return a }; return nil }
      XCTAssert(acknowledged.stored, "\(acknowledged.task) stored")
    }
    XCTAssertEqual(coordinator.scheduler.states["quick"], .stored(attempt: 1))
    XCTAssertEqual(coordinator.scheduler.states["long"], .stored(attempt: 1), "its lease lived through the other's check")
  }
}

/// A result check that waits, off the coordinator's loop, until the test lets it go (for
/// at most 30 s, so that a check run on the loop's own thread fails the test, not hangs it).
final class HeldCheck: @unchecked Sendable {
  private let condition = NSCondition()
  private var held = false
  private var released = false

  var isHeld: Bool { condition.lock(); defer { condition.unlock() }; return held }

  func hold() {
    condition.lock()
    held = true
    let deadline = Date().addingTimeInterval(30)
    while !released && condition.wait(until: deadline) {}
    held = false
    condition.unlock()
  }

  func release() {
    condition.lock()
    released = true
    condition.broadcast()
    condition.unlock()
  }
}

/// The coordinator never sent the message a test waited for.
struct NoSuchMessage: Error, CustomStringConvertible {
  var identity: String
  var description: String { "no such message to \(identity) within 10 s" }
}
