import Cluster
import Foundation

/// The coordinator's HTTP status endpoint: GET /status (JSON), GET /metrics (Prometheus
/// text format) and GET /healthz ("ok"). The coordinator's loop publishes snapshots; the
/// server, on its own threads, only reads the latest one, so a slow scraper never slows
/// the coordinator, and the listener's bounds (`HTTPListener`) keep a hostile client from
/// stopping /healthz answering.
public final class StatusServer: @unchecked Sendable {
  private let listener: HTTPListener
  private let snapshot: Snapshot
  /// The address actually listened on (the port is chosen when 0 is asked for).
  public let address: String

  /// Listens on "HOST:PORT" (IPv4; port 0 picks a free one) and returns once listening.
  public init(listen: String) throws {
    let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 2, let port = UInt16(parts[1]) else {
      throw StatusError("status address \(listen): expected HOST:PORT with a port of 0…65535, e.g. 127.0.0.1:8750 or 0.0.0.0:8750")
    }
    let host = parts[0].isEmpty || parts[0] == "*" ? "0.0.0.0" : String(parts[0]) == "localhost" ? "127.0.0.1" : String(parts[0])
    let snapshot = Snapshot()
    let listener: HTTPListener
    do {
      listener = try HTTPListener(host: host, port: port, routes: [
        "/healthz": { .init(status: 200, contentType: "text/plain", body: Data("ok\n".utf8)) },
        "/status": { snapshot.respond(contentType: "application/json") { try StatusJSON.encode($0) } },
        "/metrics": { snapshot.respond(contentType: "text/plain; version=0.0.4") { Data(PrometheusText.render($0).utf8) } },
      ])
    } catch {
      throw StatusError("status endpoint on \(listen): \(error) (is the port free?)")
    }
    self.listener = listener
    self.snapshot = snapshot
    address = "\(host):\(listener.port)"
  }

  /// Replaces the snapshot the endpoints serve.
  public func publish(_ status: CoordinatorStatus) { snapshot.set(status) }

  public func stop() { listener.stop() }
}

/// The latest status, written by the coordinator's loop and read by the connections.
private final class Snapshot: @unchecked Sendable {
  private let lock = NSLock()
  private var latest: CoordinatorStatus?

  func set(_ status: CoordinatorStatus) {
    lock.lock()
    latest = status
    lock.unlock()
  }

  func respond(contentType: String, _ body: (CoordinatorStatus) throws -> Data) -> HTTPListener.Response {
    lock.lock()
    let status = latest
    lock.unlock()
    guard let status else { return .init(status: 503, contentType: "text/plain", body: Data("starting\n".utf8)) }
    do { return .init(status: 200, contentType: contentType, body: try body(status)) } catch {
      return .init(status: 500, contentType: "text/plain", body: Data("\(error)\n".utf8))
    }
  }
}

public struct StatusError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// The JSON form of a status, shared by the server and the client.
public enum StatusJSON {
  public static func encode(_ status: CoordinatorStatus) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    encoder.keyEncodingStrategy = .convertToSnakeCase
    return try encoder.encode(status)
  }

  public static func decode(_ data: Data) throws -> CoordinatorStatus {
    let decoder = JSONDecoder()
    decoder.keyDecodingStrategy = .convertFromSnakeCase
    return try decoder.decode(CoordinatorStatus.self, from: data)
  }
}
