import Foundation

/// Mixture weights that minimise the out-of-fold negative log-likelihood over the simplex
/// (weights ≥ 0, summing to 1). The objective, −mean log Σ_m w_m p_m(true class), is convex
/// in w; exponentiated-gradient steps stay on the simplex by construction.
public struct SimplexWeights: Sendable {
  public var iterations = 500
  public var stepSize = 1.0

  public init(iterations: Int = 500) { self.iterations = iterations }

  /// `exampleWeights` (nil: all 1) weight each example's log-likelihood.
  public func fit(_ members: [Predictions], labels: [Int32], exampleWeights: [Double]? = nil) -> [Double] {
    let count = members.count
    // p[i][m]: member m's probability of example i's true class: all the objective needs.
    let truth = labels.indices.map { row in members.map { $0.probability(row: row, label: Int(labels[row])) } }
    let exampleWeights = exampleWeights ?? [Double](repeating: 1, count: labels.count)
    let totalWeight = exampleWeights.reduce(0, +)
    func loss(_ weights: [Double], _ truth: [[Double]]) -> Double {
      var sum = 0.0
      for (row, p) in truth.enumerated() { sum -= exampleWeights[row] * log(max(zip(weights, p).reduce(0) { $0 + $1.0 * $1.1 }, 1e-300)) }
      return sum / totalWeight
    }
    var weights = [Double](repeating: 1 / Double(count), count: count)
    var best = (loss: loss(weights, truth), weights: weights)
    var step = stepSize
    for _ in 0..<iterations {
      var gradient = [Double](repeating: 0, count: count)
      for (row, p) in truth.enumerated() {
        let mixture = max(zip(weights, p).reduce(0) { $0 + $1.0 * $1.1 }, 1e-300)
        for m in 0..<count { gradient[m] -= exampleWeights[row] * p[m] / mixture }
      }
      for m in 0..<count { gradient[m] /= totalWeight }
      var candidate = (0..<count).map { weights[$0] * exp(-step * gradient[$0]) }
      let total = candidate.reduce(0, +)
      candidate = candidate.map { $0 / total }
      let candidateLoss = loss(candidate, truth)
      if candidateLoss <= best.loss {
        weights = candidate
        best = (candidateLoss, candidate)
      } else {
        step /= 2  // overshot: smaller steps
        if step < 1e-6 { break }
      }
    }
    return best.weights
  }

}
