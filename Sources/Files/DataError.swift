/// A problem with input data, always naming the file and what is wrong with it.
public struct DataError: Error, CustomStringConvertible, Equatable {
  public let file: String
  public let problem: String

  public init(file: String, _ problem: String) {
    self.file = file
    self.problem = problem
  }

  public var description: String { "\(file): \(problem)" }
}
