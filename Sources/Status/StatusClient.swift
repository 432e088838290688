import Cluster
import FlyingFox
import Foundation

/// Reads a coordinator's status endpoint (what `quorum status` and the container health
/// check do).
public enum StatusClient {
  /// GETs PATH from "http://HOST:PORT" (or "HOST:PORT"); returns the status code and body.
  public static func get(_ endpoint: String, path: String, timeout: Double = 5) throws -> (code: Int, body: Data) {
    var text = endpoint
    if text.hasPrefix("http://") { text.removeFirst("http://".count) }
    if text.hasSuffix("/") { text.removeLast() }
    let parts = text.split(separator: ":")
    guard parts.count == 2, let port = UInt16(parts[1]) else {
      throw StatusError("\(endpoint): expected http://HOST:PORT, e.g. http://127.0.0.1:8750")
    }
    let host = parts[0] == "localhost" ? "127.0.0.1" : String(parts[0])
    let address: sockaddr_in
    do { address = try .inet(ip4: host, port: port) } catch {
      throw StatusError("\(endpoint): \(host) is not an IPv4 address")
    }
    let outcome = Box()
    let done = DispatchSemaphore(value: 0)
    Task {
      do {
        var client = HTTPClient()
        let response = try await client.sendHTTPRequest(HTTPRequest(
          method: .GET, version: .http11, path: path, query: [], headers: [.host: "\(host):\(port)"], body: HTTPBodySequence(data: Data())), to: address)
        outcome.set(.success((response.statusCode.code, try await response.bodyData)))
      } catch {
        outcome.set(.failure(error))
      }
      done.signal()
    }
    guard done.wait(timeout: .now() + timeout) == .success else {
      throw StatusError("\(endpoint)\(path): no answer within \(Int(timeout)) s")
    }
    switch outcome.result! {
    case .success(let response): return response
    case .failure(let error): throw StatusError("\(endpoint)\(path): \(error) (is the coordinator running with --status on this address?)")
    }
  }

  /// The coordinator's status.
  public static func status(_ endpoint: String) throws -> CoordinatorStatus {
    let (code, body) = try get(endpoint, path: "/status")
    guard code == 200 else { throw StatusError("\(endpoint)/status answered \(code): \(String(decoding: body.prefix(200), as: UTF8.self))") }
    do { return try StatusJSON.decode(body) } catch {
      throw StatusError("\(endpoint)/status: not a Quorum status (\(error))")
    }
  }
}

private final class Box: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: Result<(Int, Data), any Error>?
  var result: Result<(Int, Data), any Error>? {
    lock.lock()
    defer { lock.unlock() }
    return stored
  }

  func set(_ result: Result<(Int, Data), any Error>) {
    lock.lock()
    stored = result
    lock.unlock()
  }
}
