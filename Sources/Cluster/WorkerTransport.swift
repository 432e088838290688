import CZeroMQ

/// How a worker reaches its coordinator: a connection made afresh after each silence. A
/// ZeroMQ DEALER socket in production (`ZeroMQWorkerTransport`); `InMemoryRouter`'s
/// connections in protocol tests.
public protocol WorkerTransport: AnyObject {
  /// Where the worker connects, for its messages ("tcp://…").
  var endpoint: String { get }
  /// A new connection under the worker's routing identity.
  func connect(identity: String) throws -> any WorkerConnection
}

/// One connection of a worker to its coordinator.
public protocol WorkerConnection: AnyObject {
  /// The next message, waiting up to `timeout` seconds for one or for `wake`.
  func receive(timeout: Double) throws -> [[UInt8]]?
  /// Sends unless the connection cannot take it now (no coordinator yet): false then,
  /// and nothing is sent.
  func sendIfReady(_ frames: [[UInt8]]) throws -> Bool
  /// What happened to the connection since the last call: lines for the log, and how many
  /// times it (re)connected. Throws what ends the worker (a refused key).
  func events() throws -> (notes: [String], connections: Int)
  /// Ends a `receive` early, from any thread (a task's message is ready to send).
  func wake()
}

/// A worker's ZeroMQ connection: a DEALER socket (CURVE where there are keys), its
/// monitor read into notes and refusals (`HandshakeWatch`), and an inproc doorbell that
/// task threads ring.
public final class ZeroMQWorkerTransport: WorkerTransport {
  public let endpoint: String
  let security: Worker.Security?
  let context: ZeroMQContext
  /// Kept across connections: a refusal is judged on every attempt so far.
  private var handshake: HandshakeWatch

  public init(endpoint: String, security: Worker.Security?, context: ZeroMQContext) {
    self.endpoint = endpoint
    self.security = security
    self.context = context
    handshake = HandshakeWatch(endpoint: endpoint, security: security)
  }

  public func connect(identity: String) throws -> any WorkerConnection {
    try Connection(transport: self, identity: identity)
  }

  final class Connection: WorkerConnection, @unchecked Sendable {
    let transport: ZeroMQWorkerTransport
    let socket: ZeroMQSocket
    let monitor: ZeroMQMonitor
    let wakeReceiver: ZeroMQSocket
    let bell: ZeroMQSocket

    init(transport: ZeroMQWorkerTransport, identity: String) throws {
      self.transport = transport
      let address = "inproc://quorum-doorbell-\(ObjectIdentifier(transport).hashValue)-\(InprocAddresses.next())"
      wakeReceiver = try ZeroMQSocket(.pair, context: transport.context)
      try wakeReceiver.bind(address)
      bell = try ZeroMQSocket(.pair, context: transport.context)
      try bell.connect(address)
      socket = try ZeroMQSocket(.dealer, context: transport.context, identity: identity)
      if let security = transport.security { try socket.makeCurveClient(keys: security.keys, serverPublicKey: security.serverPublicKey) }
      monitor = try socket.monitor()
      try socket.connect(transport.endpoint)
    }

    func receive(timeout: Double) throws -> [[UInt8]]? {
      let ready = try ZeroMQSocket.poll([socket, wakeReceiver], timeout: timeout)
      if ready[1] { while try wakeReceiver.receive(timeout: 0) != nil {} }
      return ready[0] ? try socket.receive(timeout: 0) : nil
    }

    func sendIfReady(_ frames: [[UInt8]]) throws -> Bool { try socket.sendIfReady(frames) }

    func events() throws -> (notes: [String], connections: Int) {
      var notes: [String] = []
      var connections = 0
      for event in try monitor.drain() {
        if let note = try transport.handshake.observe(event) { notes.append(note) }
        if event.event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED { connections += 1 }
      }
      return (notes, connections)
    }

    // The bell is rung from task threads; a pair socket takes one sender, and the worker
    // rings it behind its lock.
    func wake() { _ = try? bell.sendIfReady([[]]) }
  }
}
