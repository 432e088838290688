import CZeroMQ
import Foundation

/// The ZeroMQ authentication handler (ZAP, RFC 27) of a context: libzmq asks it about every
/// CURVE handshake of the context's server sockets, and it admits the client keys of the
/// allow-list and nobody else. It binds inproc://zeromq.zap.01 when created, before the
/// server socket binds, and answers on its own thread until stopped.
///
/// Fail closed: a request that is not a CURVE handshake, a key not in the list, or an
/// allow-list that cannot be read is refused (status 400). A server socket with
/// ZMQ_ZAP_ENFORCE_DOMAIN refuses everyone when no handler is bound.
public final class ZAPHandler {
  private let socket: ZeroMQSocket
  private let allowList: AllowList
  private let log: (String) -> Void
  private let lock = NSLock()
  private var stopping = false
  private var thread: Thread?
  private let finished = DispatchSemaphore(value: 0)

  public init(context: ZeroMQContext, allowList: AllowList, log: @escaping (String) -> Void) throws {
    socket = try ZeroMQSocket(.reply, context: context)
    try socket.bind("inproc://zeromq.zap.01")
    self.allowList = allowList
    self.log = log
    let thread = Thread { [self] in
      serve()
      finished.signal()
    }
    thread.name = "quorum-zap"
    self.thread = thread
    thread.start()
  }

  /// Stops answering (the server socket must be closed first, or it refuses everyone).
  public func stop() {
    lock.lock()
    stopping = true
    lock.unlock()
    finished.wait()
  }

  private var isStopping: Bool {
    lock.lock()
    defer { lock.unlock() }
    return stopping
  }

  private func serve() {
    while !isStopping {
      guard let request = try? socket.receive(timeout: 0.1) else { continue }
      let reply = answer(request)
      do { try socket.send(reply) } catch { log("ZAP: could not answer: \(error)") }
    }
  }

  /// The reply to one request: version, request id, status code and text, user id,
  /// metadata.
  func answer(_ frames: [[UInt8]]) -> [[UInt8]] {
    // version, request id, domain, address, routing id, mechanism, credentials…
    guard frames.count >= 6, String(decoding: frames[0], as: UTF8.self) == "1.0" else {
      return [Array("1.0".utf8), frames.count > 1 ? frames[1] : [], Array("500".utf8), Array("malformed ZAP request".utf8), [], []]
    }
    func reply(_ code: String, _ text: String, user: String = "") -> [[UInt8]] {
      [frames[0], frames[1], Array(code.utf8), Array(text.utf8), Array(user.utf8), []]
    }
    let address = String(decoding: frames[3], as: UTF8.self)
    let mechanism = String(decoding: frames[5], as: UTF8.self)
    guard mechanism == "CURVE", frames.count == 7, frames[6].count == 32 else {
      log("refused a \(mechanism) connection from \(address): this coordinator admits CURVE clients only")
      return reply("400", "CURVE required")
    }
    var text = [CChar](repeating: 0, count: 41)
    _ = frames[6].withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress!, 32) }
    let key = String(cString: text)
    let keys: [String: String]
    do {
      let list = try allowList.read()
      keys = list.keys
      for problem in list.skipped { log("ignoring \(problem) (fix or remove it; the other keys stay admitted)") }
    } catch {
      log("refused \(key) from \(address): the allow-list cannot be read (\(error))")
      return reply("500", "allow-list unreadable")
    }
    guard let name = keys[key] else {
      log("refused worker key \(key) from \(address): not in \(allowList.path)")
      return reply("400", "key not allowed")
    }
    return reply("200", "OK", user: name)
  }
}
