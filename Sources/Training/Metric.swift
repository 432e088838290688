import Foundation

/// A competition's metric: what chooses the early-stopping epoch, Caruana's selection, the
/// submitted ensemble method and the report's headline. Every value is oriented so that
/// larger is better (the negative log-likelihood is negated by `ClassificationMetrics.score`).
///
/// Spelled as in the experiment file and on the command line: `accuracy`,
/// `balanced_accuracy`, `macro_f1`, `nll`, `quadratic_kappa`, `f_beta:2` (macro-averaged
/// F-β), `map_at_k:3` (mean average precision of the top 3 guesses, one true class per
/// example), `weighted_recall:1,1,5` (the classes' recalls weighted by the competition's
/// class weights, one per class).
public enum Metric: Hashable, Sendable {
  case accuracy
  case balancedAccuracy
  case macroF1
  case negativeLogLikelihood
  /// Cohen's kappa with quadratic weights, for ordinal labels (class i is i on the scale).
  case quadraticKappa
  /// F-β averaged over the classes, β > 0 (β = 1 is macro F1).
  case fBeta(Double)
  /// Mean over the examples of 1/rank of the true class when it is in the top k, else 0.
  case mapAtK(Int)
  /// Σ w_c · recall_c / Σ w_c over the classes present in the labels.
  case weightedRecall([Double])

  /// The metrics without a parameter, and how the others are spelled: for help texts.
  public static let spellings = "accuracy, balanced_accuracy, macro_f1, nll, quadratic_kappa, f_beta:BETA, map_at_k:K or weighted_recall:W1,W2,…"

  public init?(_ spelling: String) {
    let parts = spelling.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
    let name = parts[0]
    let parameter = parts.count > 1 ? parts[1] : nil
    switch (name, parameter) {
    case ("accuracy", nil): self = .accuracy
    case ("balanced_accuracy", nil): self = .balancedAccuracy
    case ("macro_f1", nil): self = .macroF1
    case ("nll", nil): self = .negativeLogLikelihood
    case ("quadratic_kappa", nil): self = .quadraticKappa
    case ("f_beta", let text?):
      guard let beta = Double(text), beta.isFinite, beta > 0, beta <= 1_000 else { return nil }
      self = .fBeta(beta)
    case ("map_at_k", let text?):
      guard let k = Int(text), (1...1_000).contains(k) else { return nil }
      self = .mapAtK(k)
    case ("weighted_recall", let text?):
      let weights = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
      guard !weights.isEmpty, weights.count <= 100_000, weights.allSatisfy({ $0.map { $0.isFinite && $0 >= 0 } ?? false }),
        weights.contains(where: { $0! > 0 })
      else { return nil }
      self = .weightedRecall(weights.map { $0! })
    default: return nil
    }
  }

  /// The spelling `init?(_:)` reads back.
  public var spelling: String {
    switch self {
    case .accuracy: return "accuracy"
    case .balancedAccuracy: return "balanced_accuracy"
    case .macroF1: return "macro_f1"
    case .negativeLogLikelihood: return "nll"
    case .quadraticKappa: return "quadratic_kappa"
    case .fBeta(let beta): return "f_beta:\(Self.number(beta))"
    case .mapAtK(let k): return "map_at_k:\(k)"
    case .weightedRecall(let weights): return "weighted_recall:" + weights.map(Self.number).joined(separator: ",")
    }
  }

  static func number(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
  }

  /// The metric's value as it is reported: the NLL as itself, not negated.
  public func value(_ metrics: ClassificationMetrics) -> Double {
    self == .negativeLogLikelihood ? metrics.negativeLogLikelihood : metrics.score(self)
  }

  /// Refuses a metric that cannot score a problem of `classes` classes.
  public func check(classes: Int) throws {
    switch self {
    case .weightedRecall(let weights) where weights.count != classes:
      throw MetricError("\(spelling) gives \(weights.count) class weights for \(classes) classes: give one weight per class, in class order")
    case .quadraticKappa where classes < 2:
      throw MetricError("quadratic_kappa needs at least 2 ordered classes")
    default: return
    }
  }

  /// Per-example weights for a fit by weighted cross-entropy that leans the way the metric
  /// does: classes counting equally for balanced accuracy, by the competition's weights for
  /// a weighted recall (each weight spread over its class's examples); nil where the metric
  /// counts every example alike. Normalised to a mean of 1.
  public func exampleWeights(_ labels: [Int32], classes: Int) -> [Double]? {
    let classWeight: [Double]
    switch self {
    case .balancedAccuracy: classWeight = [Double](repeating: 1, count: classes)
    case .weightedRecall(let weights) where weights.count == classes: classWeight = weights
    default: return nil
    }
    var counts = [Double](repeating: 0, count: classes)
    for label in labels { counts[Int(label)] += 1 }
    let raw = labels.map { classWeight[Int($0)] / counts[Int($0)] }
    let mean = raw.reduce(0, +) / Double(max(raw.count, 1))
    return mean > 0 ? raw.map { $0 / mean } : nil
  }
}

public struct MetricError: Error, CustomStringConvertible, Sendable {
  public var description: String
  init(_ description: String) { self.description = description }
}

extension Metric: Codable {
  public init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    let text = try container.decode(String.self)
    guard let metric = Metric(text) else {
      throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a metric: \(text) (\(Self.spellings))")
    }
    self = metric
  }

  public func encode(to encoder: Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(spelling)
  }
}

extension Metric: CustomStringConvertible {
  public var description: String { spelling }
}
