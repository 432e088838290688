import Cluster
import FlyingFox
import FlyingSocks
import Foundation

/// The coordinator's HTTP status endpoint: GET /status (JSON), GET /metrics (Prometheus
/// text format) and GET /healthz ("ok"). The coordinator's loop publishes snapshots; the
/// server, on its own tasks, only reads the latest one, so a slow scraper never slows
/// the coordinator.
public final class StatusServer: @unchecked Sendable {
  private let server: HTTPServer
  private let lock = NSLock()
  private var latest: CoordinatorStatus?
  private var task: Task<Void, any Error>?
  /// The address actually listened on (the port is chosen when 0 is asked for).
  public private(set) var address = ""

  /// Listens on "HOST:PORT" (IPv4; port 0 picks a free one) and returns once listening.
  public init(listen: String) throws {
    let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 2, let port = UInt16(parts[1]) else {
      throw StatusError("status address \(listen): expected HOST:PORT, e.g. 127.0.0.1:8750 or 0.0.0.0:8750")
    }
    let host = parts[0].isEmpty || parts[0] == "*" ? "0.0.0.0" : String(parts[0]) == "localhost" ? "127.0.0.1" : String(parts[0])
    let socketAddress: sockaddr_in
    do { socketAddress = try .inet(ip4: host, port: port) } catch {
      throw StatusError("status address \(listen): \(host) is not an IPv4 address")
    }
    server = HTTPServer(address: socketAddress, timeout: 5, logger: SilentLogger())
    let server = server
    let routes: [(String, @Sendable (HTTPRequest) async throws -> HTTPResponse)] = [
      ("GET /healthz", { _ in HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain"], body: Data("ok\n".utf8)) }),
      ("GET /status", { [unowned self] _ in try self.respond(contentType: "application/json") { try StatusJSON.encode($0) } }),
      ("GET /metrics", { [unowned self] _ in
        try self.respond(contentType: "text/plain; version=0.0.4") { Data(PrometheusText.render($0).utf8) }
      }),
    ]
    let started = DispatchSemaphore(value: 0)
    let outcome = Outcome()
    task = Task {
      for (route, handler) in routes { await server.appendRoute(HTTPRoute(stringLiteral: route), handler: handler) }
      let running = Task { try await server.run() }
      do {
        try await server.waitUntilListening(timeout: 5)
        if let bound = await server.listeningAddress, case .ip4(let ip, let port) = bound { outcome.set(address: "\(ip):\(port)") }
      } catch {
        outcome.set(error: (try? await running.value).map { _ in error } ?? error)
      }
      started.signal()
      try await running.value
    }
    started.wait()
    if let error = outcome.error { throw StatusError("status endpoint on \(listen): \(error) (is the port free?)") }
    address = outcome.address
  }

  /// Replaces the snapshot the endpoints serve.
  public func publish(_ status: CoordinatorStatus) {
    lock.lock()
    latest = status
    lock.unlock()
  }

  public func stop() {
    let server = server
    let done = DispatchSemaphore(value: 0)
    Task {
      await server.stop(timeout: 1)
      done.signal()
    }
    done.wait()
    task?.cancel()
  }

  private func respond(contentType: String, _ body: (CoordinatorStatus) throws -> Data) throws -> HTTPResponse {
    lock.lock()
    let status = latest
    lock.unlock()
    guard let status else {
      return HTTPResponse(statusCode: .serviceUnavailable, headers: [.contentType: "text/plain"], body: Data("starting\n".utf8))
    }
    return HTTPResponse(statusCode: .ok, headers: [.contentType: contentType], body: try body(status))
  }
}

/// How the server's start went, handed from its task to the caller.
private final class Outcome: @unchecked Sendable {
  private let lock = NSLock()
  private(set) var address = ""
  private(set) var error: (any Error)?

  func set(address: String) {
    lock.lock()
    self.address = address
    lock.unlock()
  }

  func set(error: any Error) {
    lock.lock()
    self.error = error
    lock.unlock()
  }
}

/// FlyingFox logs every connection by default; the coordinator's log is its own.
struct SilentLogger: FlyingSocks.Logging {
  func logDebug(_ debug: @autoclosure () -> String) {}
  func logInfo(_ info: @autoclosure () -> String) {}
  func logWarning(_ warning: @autoclosure () -> String) {}
  func logError(_ error: @autoclosure () -> String) {}
  func logCritical(_ critical: @autoclosure () -> String) {}
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
