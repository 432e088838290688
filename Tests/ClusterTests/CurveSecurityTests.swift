import CZeroMQ
import Cluster
import Data
import Files
import QuorumTestSupport
import Wire
import XCTest

/// CURVE encryption with a ZAP allow-list, on real sockets over loopback: an admitted key
/// talks; a key not on the list, a client without CURVE and a client with the wrong server
/// key are refused, and the client's monitor says why.
final class CurveSecurityTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  struct Server {
    let context: ZeroMQContext
    let router: ZeroMQSocket
    let handler: ZAPHandler
    let keys: CurveKeys
  }

  /// A CURVE router admitting the keys in `folder/allowed`.
  func server(log: @escaping (String) -> Void = { _ in }) throws -> Server {
    let context = ZeroMQContext()
    let keys = try CurveKeys.generate()
    let handler = try ZAPHandler(context: context, allowList: try AllowList(path: folder + "/allowed"), log: log)
    let router = try ZeroMQSocket(.router, context: context)
    try router.makeCurveServer(keys: keys)
    try router.bind("tcp://127.0.0.1:*")
    return Server(context: context, router: router, handler: handler, keys: keys)
  }

  /// The first handshake event of a client (succeeded or failed), within a few seconds.
  func firstHandshakeEvent(_ monitor: ZeroMQMonitor) throws -> ZeroMQMonitor.Event? {
    let deadline = Date().addingTimeInterval(5)
    var dropped = 0
    while Date() < deadline {
      for event in try monitor.drain() {
        switch event.event {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
          return event
        case ZMQ_EVENT_DISCONNECTED:
          dropped += 1
          if dropped >= 2 { return event }
        default: break
        }
      }
      Thread.sleep(forTimeInterval: 0.01)
    }
    return nil
  }

  func client(_ server: Server, keys: CurveKeys?, serverKey: String?) throws -> (ZeroMQSocket, ZeroMQMonitor) {
    let socket = try ZeroMQSocket(.dealer, context: server.context, identity: "w")
    if let keys, let serverKey { try socket.makeCurveClient(keys: keys, serverPublicKey: serverKey) }
    let monitor = try socket.monitor()
    try socket.connect(server.router.lastEndpoint)
    try socket.send(try Framing.encode(.heartbeat))
    return (socket, monitor)
  }

  func testKeysRoundTripThroughFilesAndAreNeverOverwritten() throws {
    let keys = try CurveKeys.generate()
    let paths = try keys.write(name: "gpu-1", directory: folder)
    XCTAssertEqual(try CurveKeys.read(secretKeyFile: paths.secret), keys)
    XCTAssertEqual(try CurveKeys.read(publicKeyFile: paths.public), keys.publicKey)
    let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: paths.secret)[.posixPermissions] as? Int)
    XCTAssertEqual(mode & 0o077, 0, "the secret key is readable by its owner only")
    XCTAssertNil(CurveKeys.exposure(ofSecretKeyFile: paths.secret))
    // A key others can read is said so (ssh refuses one), naming the file and the fix.
    chmod(paths.secret, 0o644)
    let warning = try XCTUnwrap(CurveKeys.exposure(ofSecretKeyFile: paths.secret))
    XCTAssert(warning.contains("mode 644") && warning.contains("chmod 600 \(paths.secret)"), warning)
    chmod(paths.secret, 0o600)
    XCTAssertThrowsError(try CurveKeys.generate().write(name: "gpu-1", directory: folder)) { XCTAssert("\($0)".contains("exists"), "\($0)") }
    XCTAssertThrowsError(try CurveKeys.read(secretKeyFile: paths.public)) { XCTAssert("\($0)".contains("public key file"), "\($0)") }
    let serving = try AllowList(path: folder)
    try FileBytes.writeAtomically(Array("not a key\n".utf8), to: folder + "/bad.pub")
    XCTAssertThrowsError(try AllowList(path: folder)) { XCTAssert("\($0)".contains("bad.pub"), "\($0)") }
    // While serving, one bad (or half-copied) file no longer locks out the listed keys: it
    // is skipped and named, and admits nobody.
    let read = try serving.read()
    XCTAssertEqual(read.keys[keys.publicKey], "gpu-1")
    XCTAssertEqual(read.keys.count, 1)
    XCTAssert(read.skipped.count == 1 && read.skipped[0].contains("bad.pub"), "\(read.skipped)")
    // A .pub file may carry a trailing comment, as the one-file list does.
    try FileBytes.writeAtomically(Array("\(keys.publicKey)  # the first GPU box\n".utf8), to: folder + "/commented.pub")
    XCTAssertEqual(try CurveKeys.read(publicKeyFile: folder + "/commented.pub"), keys.publicKey)
  }

  func testAnAdmittedKeyTalksAndOthersAreRefusedWithTheReason() throws {
    let admitted = try CurveKeys.generate()
    let stranger = try CurveKeys.generate()
    _ = try admitted.write(name: "admitted", directory: folder + "/allowed")
    var refusals: [String] = []
    let lock = NSLock()
    let server = try server(log: { line in lock.withLock { refusals.append(line) } })
    defer { server.handler.stop() }

    let (good, goodMonitor) = try client(server, keys: admitted, serverKey: server.keys.publicKey)
    XCTAssertEqual(try firstHandshakeEvent(goodMonitor)?.event, ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    let arrived = try XCTUnwrap(try server.router.receive(timeout: 5), "the admitted worker's message arrives")
    XCTAssertEqual(try Framing.decode(Array(arrived.dropFirst())), .heartbeat)

    let (strangerSocket, strangerMonitor) = try client(server, keys: stranger, serverKey: server.keys.publicKey)
    let refused = try XCTUnwrap(try firstHandshakeEvent(strangerMonitor))
    XCTAssertEqual(refused.event, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
    XCTAssertEqual(refused.value, 400)
    XCTAssert(lock.withLock { refusals.contains { $0.contains(stranger.publicKey) } }, "the coordinator logs the refused key: \(refusals)")

    let (plainSocket, plainMonitor) = try client(server, keys: nil, serverKey: nil)
    let plain = try XCTUnwrap(try firstHandshakeEvent(plainMonitor))
    XCTAssertEqual(plain.event, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
    XCTAssertEqual(Int32(bitPattern: plain.value), ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)

    let (wrongSocket, wrongMonitor) = try client(server, keys: admitted, serverKey: stranger.publicKey)
    let wrong = try XCTUnwrap(try firstHandshakeEvent(wrongMonitor))
    XCTAssertNotEqual(wrong.event, ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    XCTAssertNil(try server.router.receive(timeout: 0.3), "nothing from refused clients reaches the coordinator")

    // Rotation: a key added to the folder is admitted at its next handshake, no restart.
    _ = try stranger.write(name: "newcomer", directory: folder + "/allowed")
    let (rotatedSocket, rotatedMonitor) = try client(server, keys: stranger, serverKey: server.keys.publicKey)
    XCTAssertEqual(try firstHandshakeEvent(rotatedMonitor)?.event, ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
    // The clients live to the end: closing one stops its monitor.
    withExtendedLifetime([good, strangerSocket, plainSocket, wrongSocket, rotatedSocket]) {}
  }

  /// The worker's side: each refusal ends `Worker.run` with an error that says what to fix.
  func testARefusedWorkerStopsWithAClearMessage() throws {
    let admitted = try CurveKeys.generate()
    let stranger = try CurveKeys.generate()
    _ = try admitted.write(name: "admitted", directory: folder + "/allowed")
    let server = try server()
    defer { server.handler.stop() }
    var fast = Timing()
    fast.heartbeatInterval = 0.2
    fast.reconnectInitial = 0.1
    func failure(_ security: Worker.Security?) -> String {
      let worker = Worker(name: "w", endpoint: server.router.lastEndpoint, security: security, context: ZeroMQContext(), timing: fast) { _, _ in
        TaskOutput(tensors: [])
      }
      let deadline = Date().addingTimeInterval(10)
      do {
        try worker.run(stop: { Date() > deadline })
        return "no error"
      } catch { return "\(error)" }
    }
    let refused = failure(Worker.Security(keys: stranger, serverPublicKey: server.keys.publicKey))
    XCTAssert(refused.contains("refused this worker's key") && refused.contains(stranger.publicKey), refused)
    let plain = failure(nil)
    XCTAssert(plain.contains("requires CURVE encryption") && plain.contains("--key") && plain.contains("--server-key"), plain)
    let wrong = failure(Worker.Security(keys: admitted, serverPublicKey: stranger.publicKey))
    XCTAssert(wrong.contains("--server-key") && wrong.contains("coordinator's public key"), wrong)
  }
}
