import Cluster
import Foundation
import QuorumTestSupport
import Wire
import XCTest

/// A peer that sends what no worker would, over a real socket to a running coordinator:
/// results that declare impossible shapes, tensors the task does not return, or a
/// gigabyte of zeros. Each is refused (counted as a failed attempt, the peer named, told
/// why) or discarded, before a frame of it is decompressed, and the coordinator serves on:
/// a well-behaved worker then finishes the task.
final class HostilePeerTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  var timing: Timing {
    var timing = Timing.fastForTests
    timing.retryLimit = 8  // three refusals, and the lease given back as mallory leaves
    return timing
  }

  /// A result message as raw frames: `tensors` is the metadata's JSON list; every frame
  /// after the header is `frames` (garbage, unless the coordinator decodes it).
  func result(task: String = "only", attempt: Int, tensors: String, frames: [[UInt8]]) -> [[UInt8]] {
    [Array("QRM".utf8) + [1, 5] + Array("{\"task\":\"\(task)\",\"attempt\":\(attempt),\"tensors\":[\(tensors)]}".utf8)] + frames
  }

  /// The next message of `socket` that `match` picks out (heartbeats and the like skipped).
  func next<T>(_ socket: ZeroMQSocket, _ match: (Message) -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(20)
    while Date() < deadline {
      if let frames = try socket.receive(timeout: 0.1), let message = try? Framing.decode(frames), let found = match(message) { return found }
    }
    throw Silence()
  }

  func testResultsThatAreNotWhatTheTaskReturnsAreRefusedUndecodedAndTheTaskStillFinishes() throws {
    let context = ZeroMQContext()
    let journalPath = folder + "/journal.jsonl"
    let socket = try ZeroMQSocket(.router, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    let lines = Lines()
    let coordinator = Coordinator(
      socket: socket, scheduler: Scheduler(tasks: ["only"], timing: timing, journal: try Journal(path: journalPath)),
      settings: ["only": "{}"], store: ResultStore(runDirectory: folder), log: { lines.append($0) })
    coordinator.contract = { $0 == "only" ? ResultContract(tensors: ["oof": [3, 2]], files: [:]) : nil }
    Thread { try? coordinator.run() }.start()
    let garbage: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]

    // A peer without a lease: its result is discarded unread (its frames are not LZ4).
    let eve = try ZeroMQSocket(.dealer, context: context, identity: "eve")
    try eve.connect(socket.lastEndpoint)
    try eve.send(result(attempt: 1, tensors: "{\"name\":\"oof\",\"shape\":[3,2],\"precision\":\"float32\",\"chunks\":[24]}", frames: [garbage]))
    let discarded = try next(eve) { if case .acknowledgement(let a) = $0 { return a }; return nil }
    XCTAssertFalse(discarded.stored)
    XCTAssertNil(discarded.refusal, "late or foreign, not refused")
    // (Any peer that speaks is registered, as workers are after a coordinator restart, but
    // handed no work before its hello: WorkerIdentityTests.)
    try eve.send(try Framing.encode(.disconnect(reason: "done")))

    // A peer that holds the lease and sends junk three times.
    let mallory = try ZeroMQSocket(.dealer, context: context, identity: "mallory")
    try mallory.connect(socket.lastEndpoint)
    try mallory.send(try Framing.encode(.hello(Hello(worker: "mallory", version: "0.1.0", devices: ["cpu"], threads: 1))))
    let overflowing = "{\"name\":\"oof\",\"shape\":[4294967296,4294967296],\"precision\":\"float32\",\"chunks\":[0]}"
    let junk = "{\"name\":\"junk\",\"shape\":[1],\"precision\":\"float32\",\"chunks\":[4]}"
    // 1 GiB of zeros in 256 frames (here 4 bytes each: never decoded).
    let gigabyte = "{\"name\":\"oof\",\"shape\":[16384,16384],\"precision\":\"float32\",\"chunks\":[\(Array(repeating: "4194304", count: 256).joined(separator: ","))]}"
    let attacks = [
      (overflowing, [try emptyFrame()], "shape [4294967296, 4294967296]"),
      (junk, [garbage], "unexpected tensor \"junk\""),
      (gigabyte, Array(repeating: garbage, count: 256), "shape [16384, 16384]"),
    ]
    for (tensors, frames, problem) in attacks {
      let lease = try next(mallory) { if case .task(let t) = $0 { return t }; return nil }
      try mallory.send(result(attempt: lease.attempt, tensors: tensors, frames: frames))
      let refused = try next(mallory) { if case .acknowledgement(let a) = $0 { return a }; return nil }
      XCTAssertFalse(refused.stored)
      XCTAssert(refused.refusal?.contains(problem) == true, "\(String(describing: refused.refusal)) should name \(problem)")
    }
    try mallory.send(try Framing.encode(.disconnect(reason: "done")))

    let steady = Worker(name: "steady", endpoint: socket.lastEndpoint, context: context, timing: timing) { task, _ in
      TaskOutput(tensors: [WireTensor(name: "oof", shape: [3, 2], values: [1, 2, 3, 4, 5, 6])])
    }
    let finished = Counter()
    Thread {
      try? steady.run()
      finished.increment()
    }.start()
    let deadline = Date().addingTimeInterval(20)
    while finished.value == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    guard case .stored = coordinator.scheduler.states["only"] else { return XCTFail("\(String(describing: coordinator.scheduler.states["only"]))") }
    XCTAssertEqual(coordinator.counters.resultsRefused, 3)
    XCTAssertEqual(coordinator.counters.messagesRejected, 0, "nothing was decoded to find out")
    let crashed = try Journal.read(journalPath).filter { $0.kind == .crashed }
    XCTAssertEqual(crashed.count, 3, "each refusal used an attempt")
    XCTAssert(crashed.allSatisfy { $0.worker == "mallory" && $0.reason?.contains("refused") == true }, "\(crashed)")
    XCTAssertEqual(lines.all.filter { $0.contains("refused the result") && $0.contains("from mallory") }.count, 3, lines.all.joined(separator: "\n"))
  }

  /// Workers of another release: one whose hello names no task-specification version
  /// (from before they were versioned) and one that reads another version are refused with
  /// the reason, before any lease; a real Worker of another version stops with it; a
  /// worker of the coordinator's version then gets the task and finishes it.
  func testWorkersThatReadAnotherTaskSpecificationAreRefusedByName() throws {
    let context = ZeroMQContext()
    let socket = try ZeroMQSocket(.router, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    let lines = Lines()
    let coordinator = Coordinator(
      socket: socket, scheduler: Scheduler(tasks: ["only"], timing: timing, journal: try Journal(path: folder + "/journal.jsonl")),
      settings: ["only": "{\"version\":2}"], store: ResultStore(runDirectory: folder), log: { lines.append($0) })
    coordinator.taskSpecification = 2
    Thread { try? coordinator.run() }.start()

    let old = try ZeroMQSocket(.dealer, context: context, identity: "old")
    try old.connect(socket.lastEndpoint)
    try old.send(try Framing.encode(.hello(Hello(worker: "old", version: "0.0.9", devices: ["cpu"], threads: 1))))
    let refusal = try next(old) { if case .reject(let reason) = $0 { return reason }; return nil }
    XCTAssert(refusal.contains("task specifications of version 2") && refusal.contains("reads no version"), refusal)
    XCTAssert(lines.all.contains { $0.contains("refused worker old") }, lines.all.joined(separator: "\n"))

    let other = Worker(name: "other", endpoint: socket.lastEndpoint, context: context, timing: timing) { _, _ in
      XCTFail("a refused worker is handed no task")
      return TaskOutput(tensors: [])
    }
    other.taskSpecification = 1
    XCTAssertThrowsError(try other.run()) { error in
      XCTAssert("\(error)".contains("refused this worker") && "\(error)".contains("reads version 1"), "\(error)")
    }
    XCTAssertEqual(coordinator.scheduler.states["only"], .pending(attemptsUsed: 0), "nothing was leased to a refused worker")

    let current = Worker(name: "current", endpoint: socket.lastEndpoint, context: context, timing: timing) { task, _ in
      XCTAssertEqual(task.settings, "{\"version\":2}")
      return TaskOutput(tensors: [WireTensor(name: "oof", shape: [1], values: [1])])
    }
    current.taskSpecification = 2
    let finished = Counter()
    Thread {
      try? current.run()
      finished.increment()
    }.start()
    let deadline = Date().addingTimeInterval(20)
    while finished.value == 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    guard case .stored = coordinator.scheduler.states["only"] else { return XCTFail("\(String(describing: coordinator.scheduler.states["only"]))") }
    XCTAssertEqual(coordinator.counters.messagesRejected, 2)
  }

  /// An LZ4 frame of no bytes (the repro's "one LZ4 frame of 0 bytes").
  func emptyFrame() throws -> [UInt8] {
    try Framing.encode(.result(TaskResult(task: "t", attempt: 1, tensors: [WireTensor(name: "e", shape: [0], values: [])])))[1]
  }
}

/// The coordinator did not answer as it should have within the wait.
struct Silence: Error, CustomStringConvertible {
  var description: String { "no such message within 20 s" }
}

/// Log lines shared between the coordinator's thread and the test.
final class Lines: @unchecked Sendable {
  private let lock = NSLock()
  private var lines: [String] = []
  var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
  func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
}
