import Foundation

/// A small HTTP/1.1 server for a few GET routes, with every bound a hostile or broken
/// client could stretch held fixed: a request line of at most 8 KiB (else 414), a head of
/// at most 16 KiB (else 431), 5 s to send the head and 5 s to take the answer (else 408,
/// or the connection is dropped), at most 256 connections at once (others are closed at
/// once), one request per connection. One thread serves every connection through `poll`,
/// so a connection that sends nothing costs a slot and a few bytes, not a thread; heads
/// are scanned once, byte by byte as they arrive, so the work is linear in what clients
/// send. None of it touches the coordinator's loop.
final class HTTPListener: @unchecked Sendable {
  struct Response {
    var status: Int
    var contentType: String
    var body: Data
  }

  static let maximumRequestLine = 8 * 1024
  static let maximumHead = 16 * 1024
  static let timeout = 5.0
  static let maximumConnections = 256

  /// A connection: reading its head, then writing its answer.
  private struct Connection {
    let descriptor: Int32
    var deadline: Double
    var head: [UInt8] = []
    /// Bytes of `head` already looked at, and where the request line ends.
    var scanned = 0
    var requestLineEnd: Int?
    var output: [UInt8]?
    var sent = 0
    /// Answered: what the client still sends is read and dropped until it closes, so that
    /// closing with unread bytes does not reset the connection before the answer is read.
    var draining = false
  }

  private let descriptor: Int32
  private let routes: [String: @Sendable () -> Response]
  private let lock = NSLock()
  private var stopping = false
  private let loopDone = DispatchSemaphore(value: 0)
  /// The port listened on (the one asked for, or the one the system chose for 0).
  let port: UInt16

  /// Listens on an IPv4 address; `routes` maps a path to its response.
  init(host: String, port: UInt16, routes: [String: @Sendable () -> Response]) throws {
    guard var address = ipv4Address(host, port: port) else { throw StatusError("\(host) is not an IPv4 address") }
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw StatusError("cannot make a socket: \(String(cString: strerror(errno)))") }
    var yes: Int32 = 1
    setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0, listen(descriptor, 128) == 0 else {
      let problem = String(cString: strerror(errno))
      close(descriptor)
      throw StatusError("cannot listen on \(host):\(port): \(problem)")
    }
    var chosen = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &chosen) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
    Self.makeNonBlocking(descriptor)
    self.descriptor = descriptor
    self.port = UInt16(bigEndian: chosen.sin_port)
    self.routes = routes
    let thread = Thread { [self] in serve() }
    thread.name = "quorum-status"
    thread.start()
  }

  /// Stops serving and closes every socket.
  func stop() {
    lock.lock()
    let already = stopping
    stopping = true
    lock.unlock()
    if !already { loopDone.wait() }
  }

  private var isStopping: Bool {
    lock.lock()
    defer { lock.unlock() }
    return stopping
  }

  private static func makeNonBlocking(_ descriptor: Int32) {
    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
  }

  private func serve() {
    var connections: [Connection] = []
    defer {
      for connection in connections { close(connection.descriptor) }
      close(descriptor)
      loopDone.signal()
    }
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !isStopping {
      var entries = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
      for connection in connections {
        let writing = connection.output != nil && !connection.draining
        entries.append(pollfd(fd: connection.descriptor, events: Int16(writing ? POLLOUT : POLLIN), revents: 0))
      }
      guard poll(&entries, nfds_t(entries.count), 200) >= 0 else { continue }
      let now = Date().timeIntervalSince1970
      var open: [Connection] = []
      for (index, var connection) in connections.enumerated() {
        let events = entries[index + 1].revents
        if connection.draining {
          let count = events == 0 ? -1 : buffer.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, $0.count, 0) }
          if (events != 0 && count <= 0 && !(count < 0 && errno == EAGAIN)) || now > connection.deadline {
            close(connection.descriptor)
            continue
          }
        } else if connection.output == nil && events != 0 {
          let room = min(buffer.count, Self.maximumHead + 1 - connection.head.count)
          let count = buffer.withUnsafeMutableBytes { recv(connection.descriptor, $0.baseAddress, room, 0) }
          if count <= 0 && !(count < 0 && errno == EAGAIN) {
            close(connection.descriptor)  // closed, or an error: nobody to answer
            continue
          }
          connection.head += buffer.prefix(max(count, 0))
          if let response = read(&connection) { answer(&connection, response, now: now) }
        } else if connection.output != nil && events != 0 {
          let output = connection.output!
          let count = output.withUnsafeBytes { send(connection.descriptor, $0.baseAddress! + connection.sent, output.count - connection.sent, Int32(MSG_NOSIGNAL)) }
          if count < 0 && errno != EAGAIN {
            close(connection.descriptor)
            continue
          }
          connection.sent += max(count, 0)
          if connection.sent == output.count {
            shutdown(connection.descriptor, Int32(SHUT_WR))
            connection.draining = true
            connection.deadline = now + 1
          }
        }
        if !connection.draining && now > connection.deadline {
          if connection.output != nil {
            close(connection.descriptor)  // it does not take its answer
            continue
          }
          answer(&connection, Self.plain(408, "request head not sent within \(Int(Self.timeout)) s"), now: now)
        }
        open.append(connection)
      }
      connections = open
      if entries[0].revents != 0 {
        while true {
          let client = accept(descriptor, nil, nil)
          guard client >= 0 else { break }
          guard connections.count < Self.maximumConnections else {
            close(client)
            continue
          }
          Self.makeNonBlocking(client)
          connections.append(Connection(descriptor: client, deadline: now + Self.timeout))
        }
      }
    }
  }

  /// Scans what arrived since the last call; the response once the head is complete or a
  /// bound is passed, else nil.
  private func read(_ connection: inout Connection) -> Response? {
    let head = connection.head
    while connection.scanned < head.count {
      let index = connection.scanned
      connection.scanned += 1
      guard head[index] == 0x0A else { continue }
      if connection.requestLineEnd == nil { connection.requestLineEnd = index }
      // A blank line (LF, optionally after CR) ends the head.
      let lineStart = index >= 1 && head[index - 1] == 0x0D ? index - 1 : index
      if lineStart >= 1 && head[lineStart - 1] == 0x0A { return route(head[..<connection.requestLineEnd!]) }
    }
    if connection.requestLineEnd == nil && head.count > Self.maximumRequestLine {
      return Self.plain(414, "request line longer than \(Self.maximumRequestLine) bytes")
    }
    if head.count > Self.maximumHead { return Self.plain(431, "request head longer than \(Self.maximumHead) bytes") }
    return nil
  }

  private func route(_ requestLine: ArraySlice<UInt8>) -> Response {
    let parts = String(decoding: requestLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
    guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return Self.plain(400, "not an HTTP/1 request line") }
    guard parts[0] == "GET" else { return Self.plain(405, "only GET") }
    let path = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
    guard let route = routes[path] else { return Self.plain(404, "no \(path.prefix(100)); try /status, /metrics or /healthz") }
    return route()
  }

  private static func plain(_ status: Int, _ text: String) -> Response {
    Response(status: status, contentType: "text/plain", body: Data((text + "\n").utf8))
  }

  private func answer(_ connection: inout Connection, _ response: Response, now: Double) {
    let reasons = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
      414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"]
    let head = "HTTP/1.1 \(response.status) \(reasons[response.status] ?? "Status")\r\nContent-Type: \(response.contentType)\r\n"
      + "Content-Length: \(response.body.count)\r\nConnection: close\r\n\r\n"
    connection.output = [UInt8](head.utf8) + [UInt8](response.body)
    connection.deadline = now + Self.timeout
  }
}

/// An IPv4 socket address of dotted-quad `host`, or nil when it is not one.
func ipv4Address(_ host: String, port: UInt16) -> sockaddr_in? {
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = port.bigEndian
  return inet_pton(AF_INET, host, &address.sin_addr) == 1 ? address : nil
}
