import Foundation
import Wire

/// A coordinator's transport in memory, for protocol tests: the test speaks as any number
/// of workers (`deliver`) and reads what the coordinator sent each (`take`). Nothing waits
/// (`receive` answers at once), so a test drives the coordinator a turn at a time
/// (`Coordinator.turn`) under a clock it sets: lease expiry, silent workers and late
/// results are tested in microseconds, and the same every time.
public final class InMemoryRouter: RouterTransport, @unchecked Sendable {
  private let lock = NSLock()
  private var inbound: [[[UInt8]]] = []
  private var outbound: [String: [[[UInt8]]]] = [:]

  public init() {}

  public func prepareToServe() {}

  public func receive(timeout: Double) -> [[UInt8]]? {
    lock.lock()
    defer { lock.unlock() }
    return inbound.isEmpty ? nil : inbound.removeFirst()
  }

  public func send(_ frames: [[UInt8]]) {
    guard let identity = frames.first else { return }
    lock.lock()
    outbound[String(decoding: identity, as: UTF8.self), default: []].append(Array(frames.dropFirst()))
    lock.unlock()
  }

  /// `message` from the peer of routing identity `identity`.
  public func deliver(_ message: Message, from identity: String) throws {
    try deliver(frames: try Framing.encode(message), from: identity)
  }

  /// Raw frames from a peer (a corrupt or hostile message).
  public func deliver(frames: [[UInt8]], from identity: String) throws {
    lock.lock()
    inbound.append([Array(identity.utf8)] + frames)
    lock.unlock()
  }

  /// What the coordinator sent the peer since the last call, oldest first, decoded.
  public func take(for identity: String) throws -> [Message] {
    lock.lock()
    let sent = outbound.removeValue(forKey: identity) ?? []
    lock.unlock()
    return try sent.map { try Framing.decode($0) }
  }
}
