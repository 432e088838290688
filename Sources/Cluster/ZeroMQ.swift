import CZeroMQ
import Foundation

/// A ZeroMQ failure: the call, libzmq's message and what to check.
public struct ZeroMQError: Error, CustomStringConvertible {
  public let call: String
  public let code: Int32
  public let hint: String

  public var description: String {
    "\(call) failed: \(String(cString: zmq_strerror(code)))\(hint.isEmpty ? "" : " (\(hint))")"
  }
}

/// The one place libzmq's return codes become Swift errors.
@discardableResult
func check(_ result: Int32, _ call: String, hint: String = "") throws -> Int32 {
  if result < 0 { throw ZeroMQError(call: call, code: zmq_errno(), hint: hint) }
  return result
}

/// A ZeroMQ context: one per process, shared by its sockets.
public final class ZeroMQContext {
  let handle: UnsafeMutableRawPointer

  public init() {
    handle = zmq_ctx_new()
  }

  deinit { zmq_ctx_term(handle) }
}

/// A socket that owns its handle and closes it in `deinit`. Frames are byte arrays; a
/// message is a list of frames (multipart).
public final class ZeroMQSocket {
  public enum Kind {
    case router, dealer, reply, pair
    var value: Int32 {
      switch self {
      case .router: return ZMQ_ROUTER
      case .dealer: return ZMQ_DEALER
      case .reply: return ZMQ_REP
      case .pair: return ZMQ_PAIR
      }
    }
  }

  let handle: UnsafeMutableRawPointer
  /// Keeps the context alive as long as the socket.
  let context: ZeroMQContext

  /// `maximumMessageBytes` is ZMQ_MAXMSGSIZE: a peer sending a larger frame is
  /// disconnected by libzmq before the frame is allocated.
  public init(_ kind: Kind, context: ZeroMQContext, maximumMessageBytes: Int64 = 64 << 20, identity: String? = nil) throws {
    guard let handle = zmq_socket(context.handle, kind.value) else {
      throw ZeroMQError(call: "zmq_socket", code: zmq_errno(), hint: "")
    }
    self.handle = handle
    self.context = context
    var linger: Int32 = 0  // close at once: the journal, not the socket, is the memory
    try check(zmq_setsockopt(handle, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size), "zmq_setsockopt(ZMQ_LINGER)")
    var maximum = maximumMessageBytes
    try check(zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &maximum, MemoryLayout<Int64>.size), "zmq_setsockopt(ZMQ_MAXMSGSIZE)")
    if let identity {
      let bytes = Array(identity.utf8)
      try check(zmq_setsockopt(handle, ZMQ_ROUTING_ID, bytes, bytes.count), "zmq_setsockopt(ZMQ_ROUTING_ID)")
    }
  }

  deinit { zmq_close(handle) }

  // MARK: CURVE (set before bind or connect)

  /// Makes this socket a CURVE server: every connection is encrypted and authenticated,
  /// and each client key is put to the ZAP handler of the context (`ZAPHandler`), which
  /// must exist first. ZMQ_ZAP_ENFORCE_DOMAIN makes a missing handler refuse every peer
  /// instead of admitting them all (fail closed).
  public func makeCurveServer(keys: CurveKeys, domain: String = "quorum") throws {
    try setOption(ZMQ_CURVE_SERVER, Int32(1), "ZMQ_CURVE_SERVER")
    try setOption(ZMQ_CURVE_SECRETKEY, keys.secretKey, "ZMQ_CURVE_SECRETKEY")
    try setOption(ZMQ_ZAP_DOMAIN, domain, "ZMQ_ZAP_DOMAIN")
    // ZMQ_ZAP_ENFORCE_DOMAIN (93) is declared in zmq.h's draft section only, but libzmq
    // 4.3 honours it; a library that refuses it cannot promise to fail closed.
    try setOption(93, Int32(1), "ZMQ_ZAP_ENFORCE_DOMAIN", hint: "this libzmq cannot enforce ZAP; Quorum needs libzmq 4.3 or later")
  }

  /// Makes this socket a CURVE client of the server whose public key is given.
  public func makeCurveClient(keys: CurveKeys, serverPublicKey: String) throws {
    try setOption(ZMQ_CURVE_SERVERKEY, serverPublicKey, "ZMQ_CURVE_SERVERKEY")
    try setOption(ZMQ_CURVE_PUBLICKEY, keys.publicKey, "ZMQ_CURVE_PUBLICKEY")
    try setOption(ZMQ_CURVE_SECRETKEY, keys.secretKey, "ZMQ_CURVE_SECRETKEY")
  }

  func setOption(_ option: Int32, _ value: Int32, _ name: String, hint: String = "") throws {
    var value = value
    try check(zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size), "zmq_setsockopt(\(name))", hint: hint)
  }

  /// A text option, passed with its terminating zero (libzmq reads Z85 keys that way).
  func setOption(_ option: Int32, _ text: String, _ name: String) throws {
    let bytes = Array(text.utf8CString)
    try check(zmq_setsockopt(handle, option, bytes, text.utf8.count == 40 ? 41 : text.utf8.count), "zmq_setsockopt(\(name))")
  }

  // MARK: Monitoring

  /// A PAIR socket that receives this socket's connection events (handshake failures
  /// above all: the only way a client learns why a CURVE server refused it).
  public func monitor(events: Int32 = ZMQ_EVENT_ALL) throws -> ZeroMQMonitor {
    let address = "inproc://quorum-monitor-\(InprocAddresses.next())"
    try check(zmq_socket_monitor(handle, address, events), "zmq_socket_monitor")
    let pair = try ZeroMQSocket(.pair, context: context)
    try pair.connect(address)
    return ZeroMQMonitor(socket: pair)
  }

  public func bind(_ endpoint: String) throws {
    try Endpoint.check(endpoint, binding: true)
    try check(zmq_bind(handle, endpoint), "zmq_bind(\(endpoint))", hint: "is the address free and local?")
  }

  public func connect(_ endpoint: String) throws {
    try Endpoint.check(endpoint, binding: false)
    try check(zmq_connect(handle, endpoint), "zmq_connect(\(endpoint))")
  }

  /// The endpoint actually bound (after binding "tcp://127.0.0.1:*").
  public var lastEndpoint: String {
    var buffer = [CChar](repeating: 0, count: 256)
    var size = buffer.count
    _ = zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size)
    return String(cString: buffer)
  }

  public func send(_ frames: [[UInt8]]) throws {
    for (index, frame) in frames.enumerated() {
      let flags = index < frames.count - 1 ? ZMQ_SNDMORE : 0
      _ = try frame.withUnsafeBytes { try check(zmq_send(handle, $0.baseAddress, $0.count, flags), "zmq_send") }
    }
  }

  /// Sends unless the socket would block (a DEALER with no connection blocks a plain
  /// send forever); returns whether the message was queued. A multipart message is queued
  /// whole or not at all.
  public func sendIfReady(_ frames: [[UInt8]]) throws -> Bool {
    for (index, frame) in frames.enumerated() {
      let flags = (index < frames.count - 1 ? ZMQ_SNDMORE : 0) | (index == 0 ? ZMQ_DONTWAIT : 0)
      let result = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
      if result < 0 {
        if index == 0 && zmq_errno() == EAGAIN { return false }
        try check(result, "zmq_send")
      }
    }
    return true
  }

  /// Which of the sockets have a message waiting, after waiting up to `timeout` seconds
  /// for any of them.
  public static func poll(_ sockets: [ZeroMQSocket], timeout: Double) throws -> [Bool] {
    var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    try check(zmq_poll(&items, Int32(items.count), Int(timeout * 1000)), "zmq_poll")
    return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
  }

  /// The next message, or nil if none arrives within `timeout` seconds.
  public func receive(timeout: Double) throws -> [[UInt8]]? {
    var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
    let ready = try check(zmq_poll(&item, 1, Int(timeout * 1000)), "zmq_poll")
    guard ready > 0 else { return nil }
    var frames: [[UInt8]] = []
    var more = true
    while more {
      var message = zmq_msg_t()
      try check(zmq_msg_init(&message), "zmq_msg_init")
      defer { zmq_msg_close(&message) }
      try check(zmq_msg_recv(&message, handle, 0), "zmq_msg_recv")
      let size = zmq_msg_size(&message)
      let data = zmq_msg_data(&message)!
      frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
      more = zmq_msg_more(&message) != 0
    }
    return frames
  }
}

/// Numbers inproc addresses (monitors, doorbells): unique per process.
enum InprocAddresses {
  nonisolated(unsafe) static var count = 0
  static let lock = NSLock()

  static func next() -> Int {
    lock.lock()
    defer { lock.unlock() }
    count += 1
    return count
  }
}

/// Connection events of a monitored socket.
public struct ZeroMQMonitor {
  public struct Event {
    /// One of libzmq's ZMQ_EVENT_… flags.
    public let event: Int32
    /// The event's value: for handshake failures, the ZAP status code or protocol error.
    public let value: UInt32
    public let endpoint: String
  }

  let socket: ZeroMQSocket

  /// The events that arrived, without waiting.
  public func drain() throws -> [Event] {
    var events: [Event] = []
    while let frames = try socket.receive(timeout: 0), frames.count == 2, frames[0].count == 6 {
      let header = frames[0]
      let event = UInt16(header[0]) | UInt16(header[1]) << 8
      let value = UInt32(header[2]) | UInt32(header[3]) << 8 | UInt32(header[4]) << 16 | UInt32(header[5]) << 24
      events.append(Event(event: Int32(event), value: value, endpoint: String(decoding: frames[1], as: UTF8.self)))
    }
    return events
  }
}
