import Cluster
import Foundation
import QuorumTestSupport
import Wire
import XCTest

/// Who a worker is to the coordinator, over real sockets: a worker still busy when its
/// coordinator restarts says so before it is handed more work; a peer that never says
/// hello is handed none. (Two processes under one name: InMemoryCoordinatorTests.)
final class WorkerIdentityTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  let fast = Timing.fastForTests

  func wait(for condition: () -> Bool, seconds: Double = 20) {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
  }

  func coordinator(tasks: [String], socket: ZeroMQSocket, journal: String, lines: Lines) throws -> Coordinator {
    Coordinator(
      socket: socket, scheduler: Scheduler(tasks: tasks, timing: fast, journal: try Journal(path: journal)),
      settings: Dictionary(uniqueKeysWithValues: tasks.map { ($0, "{}") }), store: ResultStore(runDirectory: folder),
      log: { lines.append($0) })
  }

  static func output(_ task: TaskAssignment) -> TaskOutput {
    TaskOutput(tensors: [WireTensor(name: "oof", shape: [1], values: [Float(task.attempt)])])
  }

  /// A worker is training when its coordinator goes away and a new one starts on the same
  /// address. The worker's socket reconnects by itself and its heartbeats reach the new
  /// coordinator first; it is handed nothing until its hello (sent again on the new
  /// connection) says it is busy, so the pending tasks go to the idle worker that joins,
  /// although the busy one's name sorts first.
  func testAWorkerBusyWhenItsCoordinatorRestartsIsNotHandedASecondTask() throws {
    let context = ZeroMQContext()
    // The coordinator before the restart: a bare ROUTER that leases one task and goes.
    var old: ZeroMQSocket? = try ZeroMQSocket(.router, context: context)
    try old!.bind("tcp://127.0.0.1:*")
    let endpoint = old!.lastEndpoint
    let release = Counter()
    let busy = Worker(name: "a-busy", endpoint: endpoint, context: context, timing: fast) { task, _ in
      if task.task == "earlier" { while release.value == 0 { Thread.sleep(forTimeInterval: 0.02) } }
      return Self.output(task)
    }
    Thread { try? busy.run() }.start()
    let hello = try XCTUnwrap(old!.receive(timeout: 20), "the worker's hello")
    try old!.send([hello[0]] + (try Framing.encode(.task(TaskAssignment(task: "earlier", attempt: 7, settings: "{}")))))
    Thread.sleep(forTimeInterval: 0.2)  // the task is running
    old = nil

    let socket = try ZeroMQSocket(.router, context: context)
    // libzmq closes the old listener on its I/O thread, after zmq_close returns: the port
    // may still be taken for a moment, as it is not for a restarted coordinator process.
    try bindRetrying(socket, endpoint)
    let lines = Lines()
    let journal = folder + "/journal.jsonl"
    let coordinator = try coordinator(tasks: ["one", "two"], socket: socket, journal: journal, lines: lines)
    Thread { try? coordinator.run() }.start()
    wait { lines.all.contains { $0.contains("worker a-busy joined") } }
    XCTAssert(lines.all.contains { $0.contains("worker a-busy joined") }, "the reconnected worker said hello again: \(lines.all)")
    let idle = Worker(name: "b-idle", endpoint: endpoint, context: context, timing: fast) { task, _ in Self.output(task) }
    let idleDone = Counter()
    Thread {
      try? idle.run()
      idleDone.increment()
    }.start()
    wait { (try? Journal.read(journal))?.filter { $0.kind == .stored }.count == 2 }
    let leases = try Journal.read(journal).filter { $0.kind == .leased }
    XCTAssertEqual(leases.map(\.worker), ["b-idle", "b-idle"], "nothing handed to the worker busy with its earlier task")
    release.increment()
    wait { idleDone.value == 1 }
    XCTAssertTrue(coordinator.scheduler.isFinished)
  }

  private func bindRetrying(_ socket: ZeroMQSocket, _ endpoint: String) throws {
    let deadline = Date().addingTimeInterval(10)
    while true {
      do { return try socket.bind(endpoint) } catch where Date() < deadline {
        Thread.sleep(forTimeInterval: 0.05)
      }
    }
  }

  /// A peer that speaks without ever saying hello (here a result of no lease) is answered
  /// but handed no work: the lease goes to the worker that says hello, though the silent
  /// peer's name sorts first.
  func testAPeerThatNeverSaysHelloIsHandedNoWork() throws {
    let context = ZeroMQContext()
    let socket = try ZeroMQSocket(.router, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    let lines = Lines()
    let journal = folder + "/journal.jsonl"
    let coordinator = try coordinator(tasks: ["only"], socket: socket, journal: journal, lines: lines)
    Thread { try? coordinator.run() }.start()
    let anonymous = try ZeroMQSocket(.dealer, context: context, identity: "aaa")
    try anonymous.connect(socket.lastEndpoint)
    try anonymous.send(try Framing.encode(.heartbeat))
    wait { lines.all.contains { $0.contains("worker aaa is back") } }
    let steady = Worker(name: "steady", endpoint: socket.lastEndpoint, context: context, timing: fast) { task, _ in Self.output(task) }
    Thread { try? steady.run() }.start()
    wait { coordinator.scheduler.isFinished }
    XCTAssertEqual(try Journal.read(journal).filter { $0.kind == .leased }.map(\.worker), ["steady"])
    var handed = false
    while let frames = try anonymous.receive(timeout: 0.05) {
      if case .task = try Framing.decode(frames) { handed = true }
    }
    XCTAssertFalse(handed, "the peer that never said hello was handed a task")
  }

  func testWorkerNamesMustFitTheirIdentity() {
    XCTAssertNil(PeerIdentity.problem(with: "gpu-node-3"))
    XCTAssertNotNil(PeerIdentity.problem(with: ""))
    XCTAssertNotNil(PeerIdentity.problem(with: String(repeating: "w", count: PeerIdentity.maximumNameBytes + 1)))
    XCTAssertNotNil(PeerIdentity.problem(with: "tab\there"))
    let identity = PeerIdentity.identity(name: "node#2", token: PeerIdentity.token())
    XCTAssertEqual(PeerIdentity.name(of: identity), "node#2", "a # in the name survives")
    XCTAssertLessThanOrEqual(PeerIdentity.identity(name: String(repeating: "w", count: PeerIdentity.maximumNameBytes), token: PeerIdentity.token()).utf8.count, 255)
  }
}
