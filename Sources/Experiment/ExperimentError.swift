/// A problem in an experiment file, naming the file, the key and its line.
public struct ExperimentError: Error, CustomStringConvertible, Equatable {
  public let file: String
  public let line: Int?
  public let problem: String

  public init(file: String, line: Int?, _ problem: String) {
    self.file = file
    self.line = line
    self.problem = problem
  }

  public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(problem)" }
}
