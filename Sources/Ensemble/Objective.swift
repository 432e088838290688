import Foundation
import Training

/// What an ensemble method optimises on the out-of-fold predictions; larger is better
/// (the negative log-likelihood is negated).
public enum Objective: String, Codable, CaseIterable, Sendable {
  case accuracy
  case balancedAccuracy = "balanced_accuracy"
  case negativeLogLikelihood = "nll"

  /// The score of mixture probabilities `probabilities` (row-major, rows × classes).
  func score(probabilities: [Double], labels: [Int32], classes: Int) -> Double {
    let rows = labels.count
    switch self {
    case .negativeLogLikelihood:
      var sum = 0.0
      for row in 0..<rows { sum += log(max(probabilities[row * classes + Int(labels[row])], 1e-300)) }
      return sum / Double(rows)
    case .accuracy, .balancedAccuracy:
      var correct = [Int](repeating: 0, count: classes)
      var support = [Int](repeating: 0, count: classes)
      for row in 0..<rows {
        var best = 0
        for c in 1..<classes where probabilities[row * classes + c] > probabilities[row * classes + best] { best = c }
        let label = Int(labels[row])
        support[label] += 1
        if best == label { correct[label] += 1 }
      }
      if self == .accuracy { return Double(correct.reduce(0, +)) / Double(max(rows, 1)) }
      let present = (0..<classes).filter { support[$0] > 0 }
      return present.map { Double(correct[$0]) / Double(support[$0]) }.reduce(0, +) / Double(max(present.count, 1))
    }
  }

  public func score(_ metrics: ClassificationMetrics) -> Double {
    switch self {
    case .accuracy: return metrics.accuracy
    case .balancedAccuracy: return metrics.balancedAccuracy
    case .negativeLogLikelihood: return -metrics.negativeLogLikelihood
    }
  }
}
