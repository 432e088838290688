import Foundation
import Wire

/// A coordinator's transport in memory, for protocol tests. A test speaks as any number of
/// workers (`deliver`) and reads what the coordinator sent each (`take`), driving the
/// coordinator a turn at a time (`Coordinator.turn`) under a clock it sets; or real
/// `Worker`s connect to it (`connect`, it is their `WorkerTransport` too) and the two
/// loops run on their threads, messages passed in memory. No socket, no port, no sleep:
/// a receive waits on a condition, and a message wakes it.
public final class InMemoryRouter: RouterTransport, WorkerTransport, @unchecked Sendable {
  public let endpoint = "inmemory://coordinator"
  private let condition = NSCondition()
  private var inbound: [[[UInt8]]] = []
  /// Messages to peers without a connection here (the test's own), by identity.
  private var outbound: [String: [[[UInt8]]]] = [:]
  private var connections: [String: Connection] = [:]

  public init() {}

  public func prepareToServe() {}

  public func receive(timeout: Double) -> [[UInt8]]? {
    condition.lock()
    defer { condition.unlock() }
    let deadline = Date().addingTimeInterval(timeout)
    while inbound.isEmpty && timeout > 0 && condition.wait(until: deadline) {}
    return inbound.isEmpty ? nil : inbound.removeFirst()
  }

  public func send(_ frames: [[UInt8]]) {
    guard let first = frames.first else { return }
    let identity = String(decoding: first, as: UTF8.self)
    let message = Array(frames.dropFirst())
    condition.lock()
    let connection = connections[identity]
    if connection == nil { outbound[identity, default: []].append(message) }
    condition.unlock()
    connection?.arrive(message)
  }

  /// `message` from the peer of routing identity `identity`.
  public func deliver(_ message: Message, from identity: String) throws {
    try deliver(frames: try Framing.encode(message), from: identity)
  }

  /// Raw frames from a peer (a corrupt or hostile message).
  public func deliver(frames: [[UInt8]], from identity: String) throws {
    condition.lock()
    inbound.append([Array(identity.utf8)] + frames)
    condition.signal()
    condition.unlock()
  }

  /// What the coordinator sent the peer since the last call, oldest first, decoded.
  public func take(for identity: String) throws -> [Message] {
    condition.lock()
    let sent = outbound.removeValue(forKey: identity) ?? []
    condition.unlock()
    return try sent.map { try Framing.decode($0) }
  }

  /// A worker's connection: what it sends arrives here under its identity; what the
  /// coordinator sends that identity goes to it. A newer connection under the same identity
  /// takes over (as ZeroMQ's ROUTER_HANDOVER does).
  public func connect(identity: String) -> any WorkerConnection {
    let connection = Connection(router: self, identity: identity)
    condition.lock()
    connections[identity] = connection
    condition.unlock()
    return connection
  }

  final class Connection: WorkerConnection, @unchecked Sendable {
    let router: InMemoryRouter
    let identity: String
    private let condition = NSCondition()
    private var inbox: [[[UInt8]]] = []
    private var woken = false
    private var connected = false

    init(router: InMemoryRouter, identity: String) {
      self.router = router
      self.identity = identity
    }

    func arrive(_ frames: [[UInt8]]) {
      condition.lock()
      inbox.append(frames)
      condition.signal()
      condition.unlock()
    }

    func receive(timeout: Double) -> [[UInt8]]? {
      condition.lock()
      defer { condition.unlock() }
      let deadline = Date().addingTimeInterval(timeout)
      while inbox.isEmpty && !woken && condition.wait(until: deadline) {}
      woken = false
      return inbox.isEmpty ? nil : inbox.removeFirst()
    }

    func sendIfReady(_ frames: [[UInt8]]) throws -> Bool {
      try router.deliver(frames: frames, from: identity)
      return true
    }

    func events() -> (notes: [String], connections: Int) {
      condition.lock()
      defer { condition.unlock() }
      guard !connected else { return ([], 0) }
      connected = true
      return (["connected to \(router.endpoint)"], 1)
    }

    func wake() {
      condition.lock()
      woken = true
      condition.signal()
      condition.unlock()
    }
  }
}
