import Cluster

extension Timing {
  /// Heartbeats every 50 ms and a 1 s lease: short for a test, long against a shared
  /// machine's stalls.
  static var fastForTests: Timing {
    var timing = Timing()
    timing.heartbeatInterval = 0.05
    timing.missedHeartbeats = 20
    timing.reconnectInitial = 0.05
    timing.reconnectMaximum = 0.2
    return timing
  }
}
