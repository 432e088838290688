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
    case router, dealer
    var value: Int32 { self == .router ? ZMQ_ROUTER : ZMQ_DEALER }
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

  public func bind(_ endpoint: String) throws {
    try check(zmq_bind(handle, endpoint), "zmq_bind(\(endpoint))", hint: "is the address free and local?")
  }

  public func connect(_ endpoint: String) throws {
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
