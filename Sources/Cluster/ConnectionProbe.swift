import CZeroMQ
import Foundation

/// Connects to a coordinator, completes the handshake (CURVE when keys are given) and
/// leaves without a word: what `quorum doctor` does to tell a reachable coordinator that
/// admits this worker from one that is down, firewalled or refuses the key.
public enum ConnectionProbe {
  public enum Outcome: Equatable {
    case admitted(seconds: Double)
    case refused(String)
    case unreachable(String)
  }

  public static func check(endpoint: String, security: Worker.Security?, timeout: Double = 5) -> Outcome {
    let start = Date()
    do {
      let context = ZeroMQContext()
      let socket = try ZeroMQSocket(.dealer, context: context, identity: "quorum-doctor-\(getpid())")
      if let security { try socket.makeCurveClient(keys: security.keys, serverPublicKey: security.serverPublicKey) }
      let monitor = try socket.monitor()
      try socket.connect(endpoint)
      var watch = HandshakeWatch(endpoint: endpoint, security: security)
      var connected = false
      while Date().timeIntervalSince(start) < timeout {
        for event in try monitor.drain() {
          if event.event == ZMQ_EVENT_CONNECTED { connected = true }
          _ = try watch.observe(event)
          if watch.succeeded { return .admitted(seconds: Date().timeIntervalSince(start)) }
        }
        Thread.sleep(forTimeInterval: 0.01)
      }
      return .unreachable(connected
        ? "connected to \(endpoint) but no handshake within \(Int(timeout)) s: is it a Quorum coordinator?"
        : "no connection to \(endpoint) within \(Int(timeout)) s: is the coordinator running, and its port open to this machine (firewall, security group)?")
    } catch let error as WorkerError {
      return .refused(error.description)
    } catch {
      return .unreachable("\(endpoint): \(error)")
    }
  }
}
