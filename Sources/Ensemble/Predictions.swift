import Foundation
import Training

/// Class probabilities of n examples, kept as log-probabilities (row-major n × classes,
/// in Double: ensembles average and reweight them many times).
public struct Predictions: Equatable, Sendable {
  public let rows: Int
  public let classes: Int
  public private(set) var logProbabilities: [Double]

  public init(rows: Int, classes: Int, logProbabilities: [Double]) {
    precondition(logProbabilities.count == rows * classes)
    self.rows = rows
    self.classes = classes
    self.logProbabilities = logProbabilities
  }

  /// Softmax of logits [rows, classes], at temperature T (logits / T).
  public init(logits: [Float], classes: Int, temperature: Double = 1) {
    let rows = logits.count / classes
    var values = [Double](repeating: 0, count: logits.count)
    for row in 0..<rows {
      let base = row * classes
      let logSum = logSumExp(count: classes) { Double(logits[base + $0]) / temperature }
      for c in 0..<classes { values[base + c] = Double(logits[base + c]) / temperature - logSum }
    }
    self.init(rows: rows, classes: classes, logProbabilities: values)
  }

  /// The weighted mean of members' probabilities (weights need not sum to 1).
  public static func mixture(_ members: [Predictions], weights: [Double]) -> Predictions {
    let total = weights.reduce(0, +)
    let first = members[0]
    var sum = [Double](repeating: 0, count: first.logProbabilities.count)
    for (member, weight) in zip(members, weights) where weight > 0 {
      let share = weight / total
      for i in sum.indices { sum[i] += share * exp(member.logProbabilities[i]) }
    }
    return Predictions(rows: first.rows, classes: first.classes, logProbabilities: sum.map { log(max($0, 1e-300)) })
  }

  public func probability(row: Int, label: Int) -> Double { exp(logProbabilities[row * classes + label]) }

  public func predictedClass(row: Int) -> Int {
    var best = 0
    for c in 1..<classes where logProbabilities[row * classes + c] > logProbabilities[row * classes + best] { best = c }
    return best
  }

  /// The rows at `indices`, in that order.
  public func rows(_ indices: [Int]) -> Predictions {
    var values: [Double] = []
    values.reserveCapacity(indices.count * classes)
    for row in indices { values += logProbabilities[(row * classes)..<((row + 1) * classes)] }
    return Predictions(rows: indices.count, classes: classes, logProbabilities: values)
  }

  /// Sets the rows at `indices` from `part` (its rows in that order).
  public mutating func setRows(_ indices: [Int], from part: Predictions) {
    for (source, row) in indices.enumerated() {
      for c in 0..<classes { logProbabilities[row * classes + c] = part.logProbabilities[source * classes + c] }
    }
  }

  /// The standard scores against labels.
  public func metrics(labels: [Int32]) -> ClassificationMetrics {
    let floats = logProbabilities.map { Float(max($0, -1e30)) }
    return floats.withUnsafeBufferPointer { ClassificationMetrics.compute(logits: $0.baseAddress!, labels: labels, classes: classes) }
  }
}
