import Foundation
import Tensor

/// How an epoch's examples are drawn.
public enum Sampling: String, Codable, CaseIterable, Sendable {
  /// Every example once, in a seeded order.
  case shuffle
  /// Classes equally likely (Kang et al. 2020's class-balanced sampling), examples
  /// uniform within their class, with replacement; an epoch has as many draws as there
  /// are examples.
  case classBalanced = "class-balanced"
  /// Class probability ∝ √n_c (square-root sampling), examples uniform within their class.
  case squareRoot = "square-root"

  /// The class probabilities this sampling gives, for class counts n_c.
  public func classProbabilities(_ counts: [Int]) -> [Double] {
    let raw: [Double]
    switch self {
    case .shuffle: raw = counts.map(Double.init)
    case .classBalanced: raw = counts.map { $0 > 0 ? 1 : 0 }
    case .squareRoot: raw = counts.map { Double($0).squareRoot() }
    }
    let total = raw.reduce(0, +)
    return raw.map { $0 / total }
  }

  /// The examples of `epoch`, keyed by (seed, epoch) so that any machine draws the same.
  ///
  /// With `growTo`, every class with fewer examples is repeated up to that count (the
  /// Quick, Draw! winner's 1,500 per class): copy k of example i appears as the virtual
  /// index i + k·n, which `BatchAssembler` reads as example i with its own augmentation
  /// draw, so the copies differ.
  public func order(labels: [Int32], classes: Int, seed: UInt64, epoch: Int, growTo: Int? = nil) -> [Int] {
    let random = RandomStream(seed: seed, purpose: .shuffle, stream: UInt32(truncatingIfNeeded: epoch))
    if let growTo {
      let pool = Self.grown(labels: labels, classes: classes, to: growTo)
      if self == .shuffle { return random.permutation(pool.count).map { pool[$0] } }
      return order(labels: pool.map { labels[$0 % labels.count] }, classes: classes, seed: seed, epoch: epoch).map { pool[$0] }
    }
    if self == .shuffle { return random.permutation(labels.count) }
    var byClass = [[Int]](repeating: [], count: classes)
    for (index, label) in labels.enumerated() { byClass[Int(label)].append(index) }
    // Cumulative class probabilities; a draw picks a class, then a member uniformly.
    var cumulative: [Double] = []
    var running = 0.0
    for p in classProbabilities(byClass.map(\.count)) {
      running += p
      cumulative.append(running)
    }
    return (0..<labels.count).map { slot in
      let word = random.bits(at: UInt64(slot))
      let u = (Double(word.0) + Double(word.1) / 4_294_967_296.0) / 4_294_967_296.0
      let c = min(cumulative.firstIndex { u < $0 } ?? classes - 1, classes - 1)
      let members = byClass[c]
      // Parenthesised: in Swift, >> binds tighter than *.
      return members[Int((UInt64(word.2) * UInt64(members.count)) >> 32)]
    }
  }
}

extension Sampling {
  /// Virtual indices of every example, plus copies of the examples of classes below
  /// `count` (round-robin within the class) until each has `count`.
  static func grown(labels: [Int32], classes: Int, to count: Int) -> [Int] {
    let n = labels.count
    var byClass = [[Int]](repeating: [], count: classes)
    for (index, label) in labels.enumerated() { byClass[Int(label)].append(index) }
    var pool = Array(0..<n)
    for members in byClass where !members.isEmpty && members.count < count {
      for extra in 0..<(count - members.count) {
        let copy = extra / members.count + 1
        pool.append(members[extra % members.count] + copy * n)
      }
    }
    return pool
  }
}

/// Per-class loss weights, normalised to mean 1 over the classes present so that the
/// loss keeps its scale.
public enum ClassWeighting: Codable, Equatable, Sendable {
  case none
  /// w_c ∝ 1 / n_c.
  case inverseFrequency
  /// Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of Samples":
  /// w_c ∝ (1 − β) / (1 − β^n_c); β = 0.9999 is their default.
  case effectiveNumber(beta: Double)
  /// Given by the user.
  case explicit([Float])

  public func weights(counts: [Int]) -> [Float]? {
    let raw: [Double]
    switch self {
    case .none: return nil
    case .explicit(let values): return values
    case .inverseFrequency: raw = counts.map { $0 > 0 ? 1 / Double($0) : 0 }
    case .effectiveNumber(let beta): raw = counts.map { $0 > 0 ? (1 - beta) / (1 - pow(beta, Double($0))) : 0 }
    }
    let present = counts.filter { $0 > 0 }.count
    let mean = raw.reduce(0, +) / Double(max(present, 1))
    return raw.map { Float($0 / mean) }
  }
}
