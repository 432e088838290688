import Foundation

/// Scores of a classifier on labelled examples. On a balanced test set, accuracy equals
/// balanced accuracy; on imbalanced data the lowest per-class recall shows the tail.
public struct ClassificationMetrics: Codable, Equatable, Sendable {
  public var accuracy: Double
  /// Mean recall over the classes present in the labels.
  public var balancedAccuracy: Double
  /// Mean F1 over the classes present in the labels or the predictions (0 where undefined).
  public var macroF1: Double
  /// Mean negative log-likelihood of the true class.
  public var negativeLogLikelihood: Double
  /// Recall per class (NaN-free: 0 for a class with no examples).
  public var perClassRecall: [Double]
  public var lowestRecall: Double
  /// confusion[true][predicted].
  public var confusion: [[Int]]

  enum CodingKeys: String, CodingKey {
    case accuracy, balancedAccuracy = "balanced_accuracy", macroF1 = "macro_f1"
    case negativeLogLikelihood = "nll", perClassRecall = "per_class_recall", lowestRecall = "lowest_recall", confusion
  }

  /// Scores logits [n, classes] against labels.
  public static func compute(logits: UnsafePointer<Float>, labels: [Int32], classes: Int) -> ClassificationMetrics {
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    var nll = 0.0
    for (n, label) in labels.enumerated() {
      let row = logits + n * classes
      var best = 0
      var largest = -Double.infinity
      for c in 0..<classes where Double(row[c]) > largest {
        largest = Double(row[c])
        best = c
      }
      var sum = 0.0
      for c in 0..<classes { sum += exp(Double(row[c]) - largest) }
      nll -= Double(row[Int(label)]) - largest - log(sum)
      confusion[Int(label)][best] += 1
    }
    let total = max(labels.count, 1)
    let support = confusion.map { $0.reduce(0, +) }
    let predicted = (0..<classes).map { c in confusion.reduce(0) { $0 + $1[c] } }
    let correct = (0..<classes).map { confusion[$0][$0] }
    let recall = (0..<classes).map { support[$0] > 0 ? Double(correct[$0]) / Double(support[$0]) : 0 }
    let present = (0..<classes).filter { support[$0] > 0 }
    let scored = (0..<classes).filter { support[$0] > 0 || predicted[$0] > 0 }
    let f1 = scored.map { c -> Double in
      let denominator = Double(support[c] + predicted[c])
      return denominator > 0 ? 2 * Double(correct[c]) / denominator : 0
    }
    return ClassificationMetrics(
      accuracy: Double(correct.reduce(0, +)) / Double(total),
      balancedAccuracy: present.isEmpty ? 0 : present.map { recall[$0] }.reduce(0, +) / Double(present.count),
      macroF1: f1.isEmpty ? 0 : f1.reduce(0, +) / Double(f1.count),
      negativeLogLikelihood: nll / Double(total),
      perClassRecall: recall,
      lowestRecall: present.map { recall[$0] }.min() ?? 0,
      confusion: confusion)
  }

  /// A metric by name, oriented so that larger is better.
  public func score(_ metric: SelectionMetric) -> Double {
    switch metric {
    case .accuracy: return accuracy
    case .balancedAccuracy: return balancedAccuracy
    case .macroF1: return macroF1
    case .negativeLogLikelihood: return -negativeLogLikelihood
    }
  }
}

/// The validation metric that early stopping and reduce-on-plateau watch.
public enum SelectionMetric: String, Codable, CaseIterable, Sendable {
  case accuracy
  case balancedAccuracy = "balanced_accuracy"
  case macroF1 = "macro_f1"
  case negativeLogLikelihood = "nll"
}
