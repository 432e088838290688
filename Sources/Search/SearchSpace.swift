import Foundation

/// A value a trial gives a setting: a number (integers are whole numbers), or a choice's
/// text or flag.
public enum SearchValue: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
  case number(Double)
  case text(String)
  case flag(Bool)

  public var description: String {
    switch self {
    case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    case .text(let text): return text
    case .flag(let flag): return String(flag)
    }
  }
}

/// Where one setting's values are drawn from.
public enum SearchDistribution: Codable, Equatable, Sendable, CustomStringConvertible {
  /// Uniform in [low, high].
  case uniform(low: Double, high: Double)
  /// Uniform in log space over [low, high] (learning rates, weight decay), low > 0.
  case logUniform(low: Double, high: Double)
  /// A whole number in low…high, each equally likely.
  case integer(low: Int, high: Int)
  /// One of the values, each equally likely.
  case choice([SearchValue])

  /// As the experiment file spells it.
  public var description: String {
    switch self {
    case .uniform(let low, let high): return "uniform [\(SearchValue.number(low)), \(SearchValue.number(high))]"
    case .logUniform(let low, let high): return "log_uniform [\(SearchValue.number(low)), \(SearchValue.number(high))]"
    case .integer(let low, let high): return "integer [\(low), \(high)]"
    case .choice(let values): return "choice [" + values.map(\.description).joined(separator: ", ") + "]"
    }
  }

  /// Checks the bounds, naming `name`.
  public func validate(_ name: String) throws {
    switch self {
    case .uniform(let low, let high):
      guard low.isFinite, high.isFinite, low < high else { throw SearchError("\(name): uniform needs low < high, got \(low)…\(high)") }
    case .logUniform(let low, let high):
      guard low.isFinite, high.isFinite, low > 0, low < high else {
        throw SearchError("\(name): log-uniform needs 0 < low < high, got \(low)…\(high)")
      }
    case .integer(let low, let high):
      guard low <= high else { throw SearchError("\(name): integer needs low ≤ high, got \(low)…\(high)") }
    case .choice(let values):
      guard !values.isEmpty else { throw SearchError("\(name): a choice needs at least one value") }
      guard Set(values).count == values.count else { throw SearchError("\(name): a choice lists a value twice") }
    }
  }

  /// The value at `unit` ∈ [0, 1) of the distribution's own measure (the inverse CDF).
  func value(at unit: Double) -> SearchValue {
    switch self {
    case .uniform(let low, let high): return .number(low + unit * (high - low))
    case .logUniform(let low, let high): return .number(exp(log(low) + unit * (log(high) - log(low))))
    case .integer(let low, let high): return .number(Double(low + min(Int(unit * Double(high - low + 1)), high - low)))
    case .choice(let values): return values[min(Int(unit * Double(values.count)), values.count - 1)]
    }
  }
}

/// The settings a search varies, each with its distribution, in a fixed order.
public struct SearchSpace: Codable, Equatable, Sendable {
  public var parameters: [(name: String, distribution: SearchDistribution)]

  public init(_ parameters: [(name: String, distribution: SearchDistribution)]) throws {
    guard !parameters.isEmpty else { throw SearchError("a search space needs at least one setting") }
    for (name, distribution) in parameters { try distribution.validate(name) }
    guard Set(parameters.map(\.name)).count == parameters.count else { throw SearchError("a search space names a setting twice") }
    self.parameters = parameters
  }

  public static func == (l: SearchSpace, r: SearchSpace) -> Bool {
    l.parameters.map(\.name) == r.parameters.map(\.name) && l.parameters.map(\.distribution) == r.parameters.map(\.distribution)
  }

  private struct Entry: Codable { var name: String; var distribution: SearchDistribution }
  public init(from decoder: Decoder) throws {
    try self.init(try [Entry](from: decoder).map { ($0.name, $0.distribution) })
  }
  public func encode(to encoder: Encoder) throws { try parameters.map { Entry(name: $0.name, distribution: $0.distribution) }.encode(to: encoder) }
}

/// One sampled configuration: a value per setting of the space, in its order.
public typealias SearchConfiguration = [SearchValue]

/// A finished (or stopped) trial: what it tried and how it scored (larger is better: the
/// metric as `ClassificationMetrics.score` orients it); nil while running or if it failed.
public struct SearchTrial: Codable, Equatable, Sendable {
  public var configuration: SearchConfiguration
  public var score: Double?

  public init(configuration: SearchConfiguration, score: Double?) {
    self.configuration = configuration
    self.score = score
  }
}

public struct SearchError: Error, CustomStringConvertible, Equatable {
  public let description: String
  public init(_ description: String) { self.description = description }
}
