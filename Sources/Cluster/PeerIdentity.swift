import Foundation

/// A worker's ZeroMQ routing identity: its name and a token drawn once per worker process,
/// `name#token`. The coordinator's ROUTER silently drops a second connection under an
/// identity already connected, so with the bare name as identity two workers given the same
/// `--name` would leave the second unheard, retrying forever. With the token each process is
/// a peer of its own: the coordinator hears both, tells them apart by the token and tells the
/// one that must stop why (`Coordinator`). The token stays the same across one process's
/// reconnections, so a reconnecting worker is recognised as itself.
public enum PeerIdentity {
  /// ZeroMQ allows 255 bytes of routing identity; the token and its `#` take 17.
  public static let maximumNameBytes = 200

  /// A fresh process token: 16 hex digits.
  public static func token() -> String {
    String(format: "%016llx", UInt64.random(in: 1...UInt64.max))
  }

  public static func identity(name: String, token: String) -> String { name + "#" + token }

  /// The worker name an identity stands for: what precedes its last `#`, or the whole
  /// identity of a peer that sends no token (a hand-made DEALER).
  public static func name(of identity: String) -> String {
    guard let separator = identity.lastIndex(of: "#") else { return identity }
    return String(identity[..<separator])
  }

  /// Why `name` cannot name a worker, or nil: it must be printable and fit the identity.
  public static func problem(with name: String) -> String? {
    if name.isEmpty { return "is empty" }
    if name.utf8.count > maximumNameBytes { return "is \(name.utf8.count) bytes long; at most \(maximumNameBytes)" }
    if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
      return "contains a control character"
    }
    return nil
  }
}
