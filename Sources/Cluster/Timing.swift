/// The cluster's timing constants, in one place (seconds).
public struct Timing: Sendable, Equatable {
  /// How often both sides send a heartbeat.
  public var heartbeatInterval: Double = 1
  /// Heartbeats a lease survives without; then it expires and its task goes back.
  public var missedHeartbeats: Int = 4
  /// Attempts a task gets before it is marked failed and the others go on.
  public var retryLimit: Int = 3
  /// Worker reconnect backoff: from `reconnectInitial`, doubling up to `reconnectMaximum`.
  public var reconnectInitial: Double = 1
  public var reconnectMaximum: Double = 32

  public init() {}

  public var leaseDuration: Double { heartbeatInterval * Double(missedHeartbeats) }
}
