import Cluster
import Data
import Files
import Foundation
import QuorumTestSupport
import Wire
import XCTest

/// The coordinator and workers over real sockets on loopback, each loop on its own thread.
/// (The multi-process fault tests — kill -9, SIGSTOP — come with `quorum run`.)
final class CoordinatorWorkerTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  let fast = Timing.fastForTests

  /// A task's "logits": values derived from its name, so the stored file can be checked.
  static func tensors(for task: TaskAssignment) -> [WireTensor] {
    let seed = Float(task.task.unicodeScalars.reduce(0) { $0 + Int($1.value) })
    return [WireTensor(name: "oof", shape: [3, 2], values: (0..<6).map { seed + Float($0) })]
  }

  func startCoordinator(tasks: [String], context: ZeroMQContext, journal: Journal? = nil) throws -> (Coordinator, String, Thread) {
    let socket = try ZeroMQSocket(.router, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    let coordinator = Coordinator(
      socket: socket, scheduler: Scheduler(tasks: tasks, timing: fast, journal: journal),
      settings: Dictionary(uniqueKeysWithValues: tasks.map { ($0, "{\"task\":\"\($0)\"}") }),
      store: ResultStore(runDirectory: folder))
    let thread = Thread { try? coordinator.run() }
    return (coordinator, socket.lastEndpoint, thread)
  }

  func wait(for condition: () -> Bool, seconds: Double = 20) {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
  }

  func testEveryTaskIsStoredOnceAcrossTwoWorkers() throws {
    let context = ZeroMQContext()
    let tasks = (0..<6).map { "v\($0 % 2)/fold\($0 / 2)" }
    let (coordinator, endpoint, thread) = try startCoordinator(tasks: tasks, context: context)
    thread.start()
    let finished = Counter()
    for name in ["w1", "w2"] {
      let worker = Worker(name: name, endpoint: endpoint, context: context, timing: fast) { task, progress in
        progress(ProgressReport(task: task.task, attempt: task.attempt, epoch: 1, loss: 0.5, validationMetric: nil, imagesPerSecond: 100))
        Thread.sleep(forTimeInterval: 0.05)
        return TaskOutput(tensors: Self.tensors(for: task))
      }
      Thread {
        try? worker.run()
        finished.increment()
      }.start()
    }
    wait { finished.value == 2 }
    XCTAssertEqual(finished.value, 2, "both workers were told the experiment finished")
    XCTAssertTrue(coordinator.scheduler.isFinished)
    for task in tasks {
      guard case .stored = coordinator.scheduler.states[task] else { return XCTFail("\(task) not stored") }
      let file = ResultStore(runDirectory: folder).path(task: task, tensor: "oof")
      let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
      let values = bytes.suffix(24).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
      XCTAssertEqual(values, Self.tensors(for: TaskAssignment(task: task, attempt: 1, settings: ""))[0].values)
    }
  }

  /// A task whose training diverged fails at once (another attempt would diverge again)
  /// and the worker stays for the rest, which are stored.
  func testAPermanentFailureFailsTheTaskAtOnceAndTheRestAreStored() throws {
    let context = ZeroMQContext()
    let tasks = ["a/fold0", "b/fold0", "c/fold0"]
    let (coordinator, endpoint, thread) = try startCoordinator(tasks: tasks, context: context)
    thread.start()
    let finished = Counter()
    let attempts = Counter()
    let worker = Worker(name: "w", endpoint: endpoint, context: context, timing: fast) { task, _ in
      guard task.task != "b/fold0" else {
        attempts.increment()
        throw PermanentTaskFailure("training diverged: the loss became nan at epoch 1")
      }
      return TaskOutput(tensors: Self.tensors(for: task))
    }
    Thread {
      try? worker.run()
      finished.increment()
    }.start()
    wait { finished.value == 1 }
    XCTAssertEqual(coordinator.scheduler.states["b/fold0"], .failed(attemptsUsed: 1, reason: "training diverged: the loss became nan at epoch 1"))
    XCTAssertEqual(attempts.value, 1, "not retried")
    for task in ["a/fold0", "c/fold0"] { XCTAssertEqual(coordinator.scheduler.states[task], .stored(attempt: 1), task) }
  }

  /// The served data set, fetched by a worker's task in chunks (three of them: 9 MB) over
  /// real sockets, arrives byte for byte under its hash; a data set the coordinator does
  /// not serve is refused with the reason.
  func testAServedDataSetIsFetchedInChunksAndRefusedUnderAnotherHash() throws {
    let context = ZeroMQContext()
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<9_000_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let source = folder + "/served.qdata"
    try Data(bytes).write(to: URL(fileURLWithPath: source))
    let hash = SHA256.hex(bytes)
    let (coordinator, endpoint, thread) = try startCoordinator(tasks: ["a/fold0"], context: context)
    coordinator.servedData = try ServedData(path: source, hash: hash, bytes: bytes.count)
    thread.start()
    let transfers = DataTransfers()
    let fetched = folder + "/cache/\(hash).qdata"
    final class Outcome: @unchecked Sendable { var offer: DataOffer?; var refusal = "" }
    let outcome = Outcome()
    let finished = Counter()
    let worker = Worker(name: "w", endpoint: endpoint, context: context, timing: fast, transfers: transfers) { task, _ in
      outcome.offer = task.data
      try transfers.fetch(try XCTUnwrap(task.data), to: fetched)
      let other = DataOffer(hash: String(repeating: "0", count: 64), bytes: bytes.count)
      do { try transfers.fetch(other, to: self.folder + "/cache/other.qdata") } catch { outcome.refusal = "\(error)" }
      return TaskOutput(tensors: Self.tensors(for: task))
    }
    Thread {
      try? worker.run()
      finished.increment()
    }.start()
    wait(for: { finished.value == 1 }, seconds: 60)
    XCTAssertEqual(outcome.offer, DataOffer(hash: hash, bytes: bytes.count), "the lease names the served data set")
    XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: fetched))), bytes)
    XCTAssert(outcome.refusal.contains("refused") && outcome.refusal.contains("not 000000000000"), outcome.refusal)
    XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/cache/other.qdata"))
    XCTAssertGreaterThanOrEqual(coordinator.counters.dataBytesServed, 9_000_000, "incompressible bytes cost at least themselves on the wire")
  }

  /// A worker that stops answering mid-task (as under SIGSTOP) loses its lease; the task
  /// goes to the other worker and is stored once, by attempt 2.
  func testASilentWorkersTaskGoesToAnother() throws {
    let context = ZeroMQContext()
    let journalPath = folder + "/journal.jsonl"
    let (coordinator, endpoint, thread) = try startCoordinator(tasks: ["only"], context: context, journal: try Journal(path: journalPath))
    thread.start()
    let frozen = Counter()
    let sleepy = Worker(name: "sleepy", endpoint: endpoint, context: context, timing: fast) { task, _ in
      frozen.increment()  // the loop stops below: no heartbeats, no result
      Thread.sleep(forTimeInterval: 5)
      return TaskOutput(tensors: Self.tensors(for: task))
    }
    Thread { try? sleepy.run(stop: { frozen.value > 0 }) }.start()
    wait { frozen.value > 0 }
    let steady = Worker(name: "steady", endpoint: endpoint, context: context, timing: fast) { task, _ in TaskOutput(tensors: Self.tensors(for: task)) }
    Thread { try? steady.run() }.start()
    wait { coordinator.scheduler.isFinished }
    XCTAssertEqual(coordinator.scheduler.states["only"], .stored(attempt: 2))
    let events = try Journal.read(journalPath)
    XCTAssertEqual(events.filter { $0.kind == .stored }.count, 1, "stored exactly once")
    XCTAssertEqual(events.first?.worker, "sleepy")
    XCTAssertTrue(events.contains { $0.kind == .expired && $0.worker == "sleepy" })
  }
}

/// A count shared between threads.
final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var count = 0
  var value: Int { lock.lock(); defer { lock.unlock() }; return count }
  func increment() { lock.lock(); count += 1; lock.unlock() }
}
