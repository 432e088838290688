import Cluster
import Wire
import XCTest

/// Real sockets on loopback: the wire messages travel ROUTER ↔ DEALER intact, and an
/// oversized frame is refused without stopping the router.
final class ZeroMQSocketTests: XCTestCase {
  func testWireMessagesTravelBetweenRouterAndDealer() throws {
    let context = ZeroMQContext()
    let router = try ZeroMQSocket(.router, context: context)
    try router.bind("tcp://127.0.0.1:*")
    let worker = try ZeroMQSocket(.dealer, context: context, identity: "worker-1")
    try worker.connect(router.lastEndpoint)

    try worker.send(try Framing.encode(.hello(Hello(worker: "worker-1", version: "0.1.0", devices: ["cpu"], threads: 2))))
    let arrived = try XCTUnwrap(try router.receive(timeout: 5))
    XCTAssertEqual(String(decoding: arrived[0], as: UTF8.self), "worker-1", "the ROUTER prefixes the peer's identity")
    XCTAssertEqual(try Framing.decode(Array(arrived.dropFirst())), .hello(Hello(worker: "worker-1", version: "0.1.0", devices: ["cpu"], threads: 2)))

    let task = Message.task(TaskAssignment(task: "v/fold0", attempt: 1, settings: "{}"))
    try router.send([arrived[0]] + (try Framing.encode(task)))
    XCTAssertEqual(try Framing.decode(try XCTUnwrap(try worker.receive(timeout: 5))), task)

    let result = Message.result(TaskResult(task: "v/fold0", attempt: 1, tensors: [
      WireTensor(name: "oof", shape: [100, 10], values: (0..<1000).map { Float($0) / 7 }, precision: .float16),
    ]))
    try worker.send(try Framing.encode(result))
    let reply = try XCTUnwrap(try router.receive(timeout: 5))
    XCTAssertEqual(reply.count, 3, "identity, header, one tensor frame")
    // float16 on the wire: the values come back rounded to half precision.
    let rounded = Message.result(TaskResult(task: "v/fold0", attempt: 1, tensors: [
      WireTensor(name: "oof", shape: [100, 10], values: (0..<1000).map { Float(Float16(Float($0) / 7)) }, precision: .float16),
    ]))
    XCTAssertEqual(try Framing.decode(Array(reply.dropFirst())), rounded)
    XCTAssertNil(try router.receive(timeout: 0.05), "nothing more")
  }

  func testAnOversizedFrameIsRefusedAndTheRouterKeepsServing() throws {
    let context = ZeroMQContext()
    let router = try ZeroMQSocket(.router, context: context, maximumMessageBytes: 1024)
    try router.bind("tcp://127.0.0.1:*")
    let greedy = try ZeroMQSocket(.dealer, context: context, identity: "greedy")
    try greedy.connect(router.lastEndpoint)
    try greedy.send([[UInt8](repeating: 7, count: 10_000)])
    XCTAssertNil(try router.receive(timeout: 0.5), "the 10 kB frame never reaches the application")
    let polite = try ZeroMQSocket(.dealer, context: context, identity: "polite")
    try polite.connect(router.lastEndpoint)
    try polite.send(try Framing.encode(.heartbeat))
    let message = try XCTUnwrap(try router.receive(timeout: 5))
    XCTAssertEqual(String(decoding: message[0], as: UTF8.self), "polite")
    XCTAssertEqual(try Framing.decode(Array(message.dropFirst())), .heartbeat)
    XCTAssertThrowsError(try ZeroMQSocket(.router, context: context).bind("tcp://256.0.0.1:1")) { error in
      XCTAssert("\(error)".contains("zmq_bind(tcp://256.0.0.1:1)"), "\(error)")
    }
  }

  /// libzmq reads a TCP port modulo 2¹⁶ (port 70000 bound 4464, -1 bound 65535): such an
  /// endpoint is refused before libzmq sees it, naming the port.
  func testAnOutOfRangePortIsRefusedNotWrapped() throws {
    let context = ZeroMQContext()
    let router = try ZeroMQSocket(.router, context: context)
    for endpoint in ["tcp://127.0.0.1:70000", "tcp://127.0.0.1:-1", "tcp://127.0.0.1:0", "tcp://127.0.0.1:55a", "tcp://127.0.0.1"] {
      XCTAssertThrowsError(try router.bind(endpoint), endpoint) { error in
        XCTAssert("\(error)".hasPrefix(endpoint + ":") && ("\(error)".contains("1…65535") || "\(error)".contains("no port")), "\(error)")
      }
    }
    let dealer = try ZeroMQSocket(.dealer, context: context)
    XCTAssertThrowsError(try dealer.connect("tcp://127.0.0.1:*")) { XCTAssert("\($0)".contains("1…65535"), "\($0)") }
    try router.bind("tcp://127.0.0.1:*")
    XCTAssert(router.lastEndpoint.hasPrefix("tcp://127.0.0.1:"), router.lastEndpoint)
  }

}
