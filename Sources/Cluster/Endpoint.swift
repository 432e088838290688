/// A ZeroMQ endpoint checked before libzmq sees it. libzmq reads a TCP port modulo 2¹⁶:
/// `tcp://host:70000` binds port 4464 and `:-1` port 65535, without a word. So a TCP port
/// must be 1…65535 written in digits, or `*` when binding (a port the system chooses).
public struct EndpointError: Error, CustomStringConvertible {
  public let description: String
}

public enum Endpoint {
  public static func check(_ endpoint: String, binding: Bool) throws {
    guard endpoint.hasPrefix("tcp://") else { return }  // ipc://, inproc://: paths and names
    let address = endpoint.dropFirst("tcp://".count)
    guard let colon = address.lastIndex(of: ":"), colon != address.startIndex else {
      throw EndpointError(description: "\(endpoint): no port; write tcp://HOST:PORT, e.g. tcp://0.0.0.0:5555")
    }
    let port = address[address.index(after: colon)...]
    if binding && port == "*" { return }
    guard !port.isEmpty, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber), let number = Int(port), (1...65535).contains(number) else {
      throw EndpointError(
        description: "\(endpoint): port \(port) is not one of 1…65535\(binding ? " (or * for a port the system chooses)" : "")")
    }
  }
}
