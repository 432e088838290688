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
  /// trueClassRanks[r]: how many examples had their true class r-th (0: the top guess;
  /// ties count against it). What MAP@k is made of.
  public var trueClassRanks: [Int]

  enum CodingKeys: String, CodingKey {
    case accuracy, balancedAccuracy = "balanced_accuracy", macroF1 = "macro_f1"
    case negativeLogLikelihood = "nll", perClassRecall = "per_class_recall", lowestRecall = "lowest_recall", confusion
    case trueClassRanks = "true_class_ranks"
  }

  /// Scores logits [n, classes] against labels.
  public static func compute(logits: UnsafePointer<Float>, labels: [Int32], classes: Int) -> ClassificationMetrics {
    compute(labels: labels, classes: classes, value: { Double(logits[$0]) }) { row, label, largest in
      var sum = 0.0
      for c in 0..<classes { sum += exp(Double(logits[row + c]) - largest) }
      return Double(logits[row + label]) - largest - log(sum)
    }
  }

  /// Scores probabilities [n, classes] (each row summing to 1) against labels: what
  /// Caruana's selection calls for every candidate mixture, so no logarithm but the true
  /// class's.
  public static func compute(probabilities: [Double], labels: [Int32], classes: Int) -> ClassificationMetrics {
    probabilities.withUnsafeBufferPointer { p in
      compute(labels: labels, classes: classes, value: { p[$0] }) { row, label, _ in log(max(p[row + label], 1e-300)) }
    }
  }

  /// `value(i)`: a score that orders the classes of a row (a logit or a probability) at flat
  /// index i = row · classes + class; `trueLogProbability(row offset, label, the row's
  /// largest value)`: the log-probability of the true class.
  static func compute(
    labels: [Int32], classes: Int, value: (Int) -> Double, trueLogProbability: (Int, Int, Double) -> Double
  ) -> ClassificationMetrics {
    var confusion = [[Int]](repeating: [Int](repeating: 0, count: classes), count: classes)
    var ranks = [Int](repeating: 0, count: classes)
    var nll = 0.0
    for (n, label) in labels.enumerated() {
      let row = n * classes
      let truth = value(row + Int(label))
      var best = 0
      var largest = -Double.infinity
      var above = 0
      for c in 0..<classes {
        let score = value(row + c)
        if score > largest { (largest, best) = (score, c) }
        if c != Int(label) && score >= truth { above += 1 }
      }
      nll -= trueLogProbability(row, Int(label), largest)
      confusion[Int(label)][best] += 1
      ranks[above] += 1
    }
    let total = max(labels.count, 1)
    let support = confusion.map { $0.reduce(0, +) }
    let correct = (0..<classes).map { confusion[$0][$0] }
    let recall = (0..<classes).map { support[$0] > 0 ? Double(correct[$0]) / Double(support[$0]) : 0 }
    let present = (0..<classes).filter { support[$0] > 0 }
    return ClassificationMetrics(
      accuracy: Double(correct.reduce(0, +)) / Double(total),
      balancedAccuracy: present.isEmpty ? 0 : present.map { recall[$0] }.reduce(0, +) / Double(present.count),
      macroF1: fBeta(1, confusion: confusion),
      negativeLogLikelihood: nll / Double(total),
      perClassRecall: recall,
      lowestRecall: present.map { recall[$0] }.min() ?? 0,
      confusion: confusion,
      trueClassRanks: ranks)
  }

  /// F-β averaged over the classes present in the labels or the predictions (0 where a
  /// class's is undefined), as scikit-learn's `fbeta_score(average="macro")`.
  static func fBeta(_ beta: Double, confusion: [[Int]]) -> Double {
    let classes = confusion.count
    let b2 = beta * beta
    var total = 0.0
    var scored = 0
    for c in 0..<classes {
      let support = confusion[c].reduce(0, +)
      let predicted = confusion.reduce(0) { $0 + $1[c] }
      guard support > 0 || predicted > 0 else { continue }
      scored += 1
      // (1 + β²)·tp / ((1 + β²)·tp + β²·fn + fp) = (1 + β²)·tp / (β²·support + predicted)
      total += (1 + b2) * Double(confusion[c][c]) / (b2 * Double(support) + Double(predicted))
    }
    return scored > 0 ? total / Double(scored) : 0
  }

  /// Cohen's kappa with weights (i − j)², as scikit-learn's
  /// `cohen_kappa_score(weights="quadratic")`; 0 where it is undefined (one class only).
  var quadraticKappa: Double {
    let classes = confusion.count
    let rows = confusion.map { Double($0.reduce(0, +)) }
    let columns = (0..<classes).map { c in Double(confusion.reduce(0) { $0 + $1[c] }) }
    let total = rows.reduce(0, +)
    guard total > 0 else { return 0 }
    var observed = 0.0
    var expected = 0.0
    for i in 0..<classes {
      for j in 0..<classes {
        let weight = Double((i - j) * (i - j))
        observed += weight * Double(confusion[i][j])
        expected += weight * rows[i] * columns[j] / total
      }
    }
    return expected > 0 ? 1 - observed / expected : 0
  }

  /// A metric by name, oriented so that larger is better.
  public func score(_ metric: Metric) -> Double {
    switch metric {
    case .accuracy: return accuracy
    case .balancedAccuracy: return balancedAccuracy
    case .macroF1: return macroF1
    case .negativeLogLikelihood: return -negativeLogLikelihood
    case .quadraticKappa: return quadraticKappa
    case .fBeta(let beta): return Self.fBeta(beta, confusion: confusion)
    case .mapAtK(let k):
      let total = trueClassRanks.reduce(0, +)
      guard total > 0 else { return 0 }
      return trueClassRanks.prefix(k).enumerated().reduce(0.0) { $0 + Double($1.element) / Double($1.offset + 1) } / Double(total)
    case .weightedRecall(let weights):
      var (sum, weightSum) = (0.0, 0.0)
      for (c, row) in confusion.enumerated() where row.reduce(0, +) > 0 && c < weights.count {
        sum += weights[c] * perClassRecall[c]
        weightSum += weights[c]
      }
      return weightSum > 0 ? sum / weightSum : 0
    }
  }
}

extension ClassificationMetrics {
  public init(from decoder: Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    accuracy = try container.decode(Double.self, forKey: .accuracy)
    balancedAccuracy = try container.decode(Double.self, forKey: .balancedAccuracy)
    macroF1 = try container.decode(Double.self, forKey: .macroF1)
    negativeLogLikelihood = try container.decode(Double.self, forKey: .negativeLogLikelihood)
    perClassRecall = try container.decode([Double].self, forKey: .perClassRecall)
    lowestRecall = try container.decode(Double.self, forKey: .lowestRecall)
    let confusion = try container.decode([[Int]].self, forKey: .confusion)
    self.confusion = confusion
    // Absent from the state files of versions before the ranks were kept: MAP@k of a
    // resumed run's earlier epochs then counts only the top guesses it can rebuild.
    trueClassRanks = try container.decodeIfPresent([Int].self, forKey: .trueClassRanks)
      ?? [confusion.indices.reduce(0) { $0 + confusion[$1][$1] }]
  }
}
