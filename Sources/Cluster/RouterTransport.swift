import CZeroMQ

/// What the coordinator's loop needs of its socket: the next message from any peer (the
/// peer's routing identity as its first frame) and a message to one (the same). A ZeroMQ
/// ROUTER socket in production; an `InMemoryRouter` in protocol tests, which then run
/// without sockets, ports or sleeps.
public protocol RouterTransport: AnyObject {
  /// Readies it to serve, once before the loop starts.
  func prepareToServe() throws
  /// The next message, or nil after `timeout` seconds without one.
  func receive(timeout: Double) throws -> [[UInt8]]?
  func send(_ frames: [[UInt8]]) throws
}

extension ZeroMQSocket: RouterTransport {
  /// A worker's identity is its own (`PeerIdentity`), so a connection under a connected
  /// identity is that worker again (its old connection half-open after a network cut):
  /// the new one takes over instead of being dropped unheard.
  public func prepareToServe() throws { try setOption(ZMQ_ROUTER_HANDOVER, 1, "ZMQ_ROUTER_HANDOVER") }
}
