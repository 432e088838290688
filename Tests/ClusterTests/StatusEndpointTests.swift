import Cluster
import Foundation
import Glibc
import QuorumTestSupport
import Status
import XCTest

/// The status endpoint against clients that misbehave, over real loopback sockets: a
/// request line or head past its bound is answered 414 or 431, a client that sends
/// nothing is answered 408 after the deadline, and meanwhile /healthz keeps answering
/// (before, two 1 MB request lines stopped it answering for good).
final class StatusEndpointTests: XCTestCase {
  func startServer() throws -> StatusServer {
    let context = ZeroMQContext()
    let socket = try ZeroMQSocket(.router, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    let coordinator = Coordinator(socket: socket, scheduler: Scheduler(tasks: ["a"]), settings: [:], store: ResultStore(runDirectory: "/nonexistent"))
    let server = try StatusServer(listen: "127.0.0.1:0")
    server.publish(coordinator.status(experiment: "hostile", version: "test"))
    return server
  }

  /// A raw TCP client of the server: connects, sends `bytes` (as much as it takes), and
  /// returns what comes back until the server closes (or 10 s pass).
  final class RawClient {
    let descriptor: Int32

    init(port: UInt16) throws {
      descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = port.bigEndian
      address.sin_addr.s_addr = inet_addr("127.0.0.1")
      let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
      }
      guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
      var limit = timeval(tv_sec: 10, tv_usec: 0)
      setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
      setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(descriptor) }

    /// Sends what the server takes; false once it stops taking (it answered and closed).
    @discardableResult func send(_ bytes: [UInt8]) -> Bool {
      var sent = 0
      while sent < bytes.count {
        let count = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
        guard count > 0 else { return false }
        sent += count
      }
      return true
    }

    func response() -> String {
      var received: [UInt8] = []
      var buffer = [UInt8](repeating: 0, count: 4096)
      while true {
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { break }
        received += buffer.prefix(count)
      }
      return String(decoding: received, as: UTF8.self)
    }
  }

  func assertHealthy(_ server: StatusServer, file: StaticString = #filePath, line: UInt = #line) throws {
    let (code, body) = try StatusClient.get(server.address, path: "/healthz")
    XCTAssertEqual(code, 200, file: file, line: line)
    XCTAssertEqual(String(decoding: body, as: UTF8.self), "ok\n", file: file, line: line)
  }

  func testOversizedRequestsAreAnsweredWithTheirLimitAndHealthzKeepsAnswering() throws {
    let server = try startServer()
    defer { server.stop() }
    let port = try XCTUnwrap(UInt16(server.address.split(separator: ":")[1]))
    try assertHealthy(server)

    let long = try RawClient(port: port)
    long.send(Array("GET /".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 9_000))
    XCTAssert(long.response().hasPrefix("HTTP/1.1 414 "), "a request line past 8 KiB")
    let wide = try RawClient(port: port)
    wide.send(Array("GET /healthz HTTP/1.1\r\n".utf8) + Array(String(repeating: "X-Padding: 0123456789012345678901234567890123456789\r\n", count: 400).utf8))
    XCTAssert(wide.response().hasPrefix("HTTP/1.1 431 "), "a head past 16 KiB")

    // Two clients sending 1 MB request lines, while /healthz is asked in between.
    let blasters = try (0..<2).map { _ in try RawClient(port: port) }
    let done = DispatchGroup()
    for blaster in blasters {
      DispatchQueue.global().async(group: done) { blaster.send([UInt8](repeating: UInt8(ascii: "b"), count: 1 << 20)) }
    }
    try assertHealthy(server)
    done.wait()
    try assertHealthy(server)

    let status = try StatusClient.status(server.address)
    XCTAssertEqual(status.experiment, "hostile", "the status still serves")
  }

  func testAClientThatSendsNothingIsAnswered408AndDoesNotBlockOthers() throws {
    let server = try startServer()
    defer { server.stop() }
    let port = try XCTUnwrap(UInt16(server.address.split(separator: ":")[1]))
    let idle = try (0..<40).map { _ in try RawClient(port: port) }
    let slow = try RawClient(port: port)
    slow.send(Array("GET /healthz HTTP/1.1\r\nHost: x".utf8))  // and never the rest
    try assertHealthy(server)
    XCTAssert(slow.response().hasPrefix("HTTP/1.1 408 "), "a head not finished within 5 s")
    XCTAssert(idle[0].response().hasPrefix("HTTP/1.1 408 "))
    try assertHealthy(server)
  }
}
