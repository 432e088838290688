import Foundation
import Tensor
import Training

/// Ensemble selection (Caruana et al., 2004): start from the best few members, then add,
/// with replacement, the member that most improves the mixture's score, and keep the best
/// mixture seen along the way. Bagging repeats the selection on random subsets of the
/// members and averages the weights, which keeps one lucky member from taking over.
public struct CaruanaSelection: Sendable {
  public var objective: Metric = .negativeLogLikelihood
  /// Additions after the initialisation.
  public var iterations = 50
  /// Best single members the selection starts from ("sorted initialisation").
  public var initialMembers = 1
  /// Selections on random subsets (0: one selection on all members).
  public var bags = 0
  /// Share of the members in each bag.
  public var bagFraction = 0.5
  public var seed: UInt64 = 0

  public init(objective: Metric = .negativeLogLikelihood, iterations: Int = 50, initialMembers: Int = 1, bags: Int = 0) {
    self.objective = objective
    self.iterations = iterations
    self.initialMembers = initialMembers
    self.bags = bags
  }

  /// Weights (summing to 1) over `members`, fitted to `labels`.
  public func fit(_ members: [Predictions], labels: [Int32]) -> [Double] {
    let probabilities = members.map { $0.logProbabilities.map(exp) }
    guard bags > 0 else { return select(probabilities, among: Array(members.indices), labels: labels, classes: members[0].classes) }
    let random = RandomStream(seed: seed, purpose: .ensemble)
    var total = [Double](repeating: 0, count: members.count)
    let size = max(1, Int((Double(members.count) * bagFraction).rounded()))
    for bag in 0..<bags {
      // A random subset: the members ordered by a random key, the first `size` of them.
      let keys = members.indices.map { random.uniform(at: UInt64(bag * members.count + $0)) }
      let chosen = members.indices.sorted { keys[$0] < keys[$1] }.prefix(size)
      let weights = select(probabilities, among: Array(chosen), labels: labels, classes: members[0].classes)
      for m in members.indices { total[m] += weights[m] }
    }
    return total.map { $0 / Double(bags) }
  }

  /// The objective's score of mixture probabilities (rows × classes, row-major).
  private func score(_ probabilities: [Double], labels: [Int32], classes: Int) -> Double {
    ClassificationMetrics.compute(probabilities: probabilities, labels: labels, classes: classes).score(objective)
  }

  private func select(_ probabilities: [[Double]], among candidates: [Int], labels: [Int32], classes: Int) -> [Double] {
    let count = probabilities[0].count
    var counts = [Int](repeating: 0, count: probabilities.count)
    var sum = [Double](repeating: 0, count: count)
    var selected = 0
    func add(_ m: Int) {
      counts[m] += 1
      selected += 1
      for i in 0..<count { sum[i] += probabilities[m][i] }
    }
    func scoreWith(_ m: Int) -> Double {
      let share = 1 / Double(selected + 1)
      let mixture = (0..<count).map { (sum[$0] + probabilities[m][$0]) * share }
      return score(mixture, labels: labels, classes: classes)
    }
    // Sorted initialisation: the best single members, once each.
    let alone = candidates.map { m in (m, score(probabilities[m], labels: labels, classes: classes)) }
    for (m, _) in alone.sorted(by: { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }).prefix(max(1, initialMembers)) { add(m) }
    var best = (score: score(sum.map { $0 / Double(selected) }, labels: labels, classes: classes), counts: counts)
    for _ in 0..<iterations {
      var choice = candidates[0]
      var choiceScore = -Double.infinity
      for m in candidates {
        let score = scoreWith(m)
        if score > choiceScore { (choice, choiceScore) = (m, score) }
      }
      add(choice)
      if choiceScore > best.score { best = (choiceScore, counts) }
    }
    let total = Double(best.counts.reduce(0, +))
    return best.counts.map { Double($0) / total }
  }
}
