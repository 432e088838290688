import Cluster
import Foundation

/// Reads a coordinator's status endpoint (what `quorum status` and the container health
/// check do).
public enum StatusClient {
  /// GETs PATH from "http://HOST:PORT" (or "HOST:PORT"); returns the status code and body.
  public static func get(_ endpoint: String, path: String, timeout: Double = 5) throws -> (code: Int, body: Data) {
    var text = endpoint
    if text.hasPrefix("http://") { text.removeFirst("http://".count) }
    if text.hasSuffix("/") { text.removeLast() }
    let parts = text.split(separator: ":")
    guard parts.count == 2, let port = UInt16(parts[1]) else {
      throw StatusError("\(endpoint): expected http://HOST:PORT, e.g. http://127.0.0.1:8750")
    }
    let host = parts[0] == "localhost" ? "127.0.0.1" : String(parts[0])
    guard var address = ipv4Address(host, port: port) else { throw StatusError("\(endpoint): \(host) is not an IPv4 address") }
    func failure(_ problem: String) -> StatusError {
      StatusError("\(endpoint)\(path): \(problem) (is the coordinator running with --status on this address?)")
    }
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw failure(String(cString: strerror(errno))) }
    defer { close(descriptor) }
    // Non-blocking, so that connecting, sending and reading all wait at most `timeout`.
    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    let deadline = Date().addingTimeInterval(timeout)
    func wait(_ events: Int32) throws {
      var entry = pollfd(fd: descriptor, events: Int16(events), revents: 0)
      let left = Int32(max(deadline.timeIntervalSinceNow, 0) * 1000)
      guard poll(&entry, 1, left) > 0 else { throw StatusError("\(endpoint)\(path): no answer within \(Int(timeout)) s") }
    }
    let connected = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if connected != 0 {
      guard errno == EINPROGRESS else { throw failure(String(cString: strerror(errno))) }
      try wait(POLLOUT)
      var problem: Int32 = 0
      var length = socklen_t(MemoryLayout<Int32>.size)
      getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &problem, &length)
      guard problem == 0 else { throw failure(String(cString: strerror(problem))) }
    }
    let request = [UInt8]("GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n".utf8)
    var sent = 0
    while sent < request.count {
      try wait(POLLOUT)
      let count = request.withUnsafeBytes { send(descriptor, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
      guard count > 0 || errno == EAGAIN else { throw failure(String(cString: strerror(errno))) }
      sent += max(count, 0)
    }
    // The server closes after its one response: read to the end (bounded).
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while response.count <= maximumResponse {
      try wait(POLLIN)
      let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
      if count == 0 { break }
      guard count > 0 || errno == EAGAIN else { throw failure(String(cString: strerror(errno))) }
      response += buffer.prefix(max(count, 0))
    }
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let split = (0..<max(response.count - 3, 0)).first(where: { response[$0..<$0 + 4].elementsEqual(separator) }) else {
      throw failure("not an HTTP response")
    }
    let statusLine = String(decoding: response.prefix { $0 != 13 }, as: UTF8.self).split(separator: " ")
    guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let code = Int(statusLine[1]) else {
      throw failure("not an HTTP response")
    }
    return (code, Data(response[(split + 4)...]))
  }

  /// The most a response may hold (a status of a large experiment is well under it).
  static let maximumResponse = 64 << 20

  /// The coordinator's status.
  public static func status(_ endpoint: String) throws -> CoordinatorStatus {
    let (code, body) = try get(endpoint, path: "/status")
    guard code == 200 else { throw StatusError("\(endpoint)/status answered \(code): \(String(decoding: body.prefix(200), as: UTF8.self))") }
    do { return try StatusJSON.decode(body) } catch {
      throw StatusError("\(endpoint)/status: not a Quorum status (\(error))")
    }
  }
}
