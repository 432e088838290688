/// A message that does not follow the protocol: what was wrong, in which message and
/// tensor. The receiver drops the message and keeps serving.
public struct WireError: Error, CustomStringConvertible, Equatable {
  public let problem: String
  public init(_ problem: String) { self.problem = problem }
  public var description: String { "malformed message: \(problem)" }
}
