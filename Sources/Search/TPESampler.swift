import Foundation

/// The tree-structured Parzen estimator (Bergstra et al. 2011), univariate, as Optuna's
/// default sampler: after `startupTrials` random trials, the scored trials are split into
/// the best γ(n) = min(⌈0.1·n⌉, 25) and the rest; for each setting a Parzen density l over
/// the best and g over the rest (each with a wide prior component), and the candidate of
/// `candidates` drawn from l with the largest l/g is proposed. Numbers are modelled in
/// their distribution's own scale (log for log-uniform; integers as continuous, rounded),
/// as truncated Gaussians with Optuna's bandwidths (the larger gap to a neighbour, clipped);
/// choices as smoothed frequencies.
public struct TPESampler: SearchSampler {
  public let space: SearchSpace
  public let seed: UInt64
  public var startupTrials = 10
  public var candidates = 24

  public init(space: SearchSpace, seed: UInt64) {
    self.space = space
    self.seed = seed
  }

  public func propose(trial index: Int, history: [SearchTrial]) -> SearchConfiguration? {
    let scored = history.compactMap { trial in trial.score.map { (trial.configuration, $0) } }
    guard scored.count >= startupTrials else {
      return RandomSampler(space: space, seed: seed).propose(trial: index, history: history)
    }
    // Best first; ties by their order, so the split does not depend on the sort.
    let ranked = scored.enumerated().sorted { ($0.element.1, -$0.offset) > ($1.element.1, -$1.offset) }.map(\.element.0)
    let good = min(Int((0.1 * Double(ranked.count)).rounded(.up)), 25)
    var draw = 0
    func unit() -> Double {
      defer { draw += 1 }
      return Self.unit(seed: seed, trial: index, draw: draw)
    }
    return space.parameters.enumerated().map { k, parameter in
      let best = ranked.prefix(good).map { $0[k] }, rest = ranked.dropFirst(good).map { $0[k] }
      switch parameter.distribution {
      case .choice(let values):
        return Self.proposeChoice(values, best: best, rest: rest, candidates: candidates, unit: unit)
      case .uniform, .logUniform, .integer:
        return Self.proposeNumber(parameter.distribution, best: best, rest: rest, candidates: candidates, unit: unit)
      }
    }
  }

  /// A choice: l and g the groups' frequencies with one prior observation spread over
  /// the values; the candidate drawn from l with the largest l/g.
  static func proposeChoice(
    _ values: [SearchValue], best: [SearchValue], rest: [SearchValue], candidates: Int, unit: () -> Double
  ) -> SearchValue {
    func frequencies(_ group: [SearchValue]) -> [Double] {
      let counts = values.map { value in Double(group.filter { $0 == value }.count) + 1 / Double(values.count) }
      let total = counts.reduce(0, +)
      return counts.map { $0 / total }
    }
    let l = frequencies(best), g = frequencies(rest)
    var chosen = 0
    var bestRatio = -Double.infinity
    for _ in 0..<candidates {
      var u = unit(), c = 0
      while c < values.count - 1 && u >= l[c] { u -= l[c]; c += 1 }
      let ratio = log(l[c]) - log(g[c])
      if ratio > bestRatio { (bestRatio, chosen) = (ratio, c) }
    }
    return values[chosen]
  }

  /// The internal scale of a numeric distribution: its range there and the maps to and
  /// from values.
  struct Scale {
    var low: Double, high: Double
    var toInternal: (Double) -> Double
    var toValue: (Double) -> SearchValue

    init(_ distribution: SearchDistribution) {
      switch distribution {
      case .uniform(let l, let h): (low, high, toInternal, toValue) = (l, h, { $0 }, { .number($0) })
      case .logUniform(let l, let h): (low, high, toInternal, toValue) = (log(l), log(h), { log($0) }, { .number(exp($0)) })
      case .integer(let l, let h):
        // Each integer owns the unit interval around it.
        (low, high, toInternal, toValue) = (Double(l) - 0.5, Double(h) + 0.5, { $0 }, { .number(min(max($0.rounded(), Double(l)), Double(h))) })
      case .choice: preconditionFailure("a choice has no numeric scale")
      }
    }
  }

  /// A Parzen density on [low, high]: a truncated Gaussian per observation plus a prior
  /// one (the range's centre, σ the range), equally weighted.
  struct Parzen {
    var means: [Double] = [], deviations: [Double] = []
    let low: Double, high: Double

    init(_ points: [Double], low: Double, high: Double) {
      self.low = low
      self.high = high
      let span = high - low
      // The observations and the prior (flagged), in order.
      let centres = (points.map { ($0, false) } + [((low + high) / 2, true)]).sorted { $0.0 < $1.0 }
      // Optuna's bandwidth: the larger gap to a neighbour (the range's ends bound the
      // outer points), clipped to [span / min(100, 1 + n), span]; the prior's is the span.
      let floor = span / min(100, 1 + Double(points.count))
      for (i, (mean, isPrior)) in centres.enumerated() {
        let left = i > 0 ? mean - centres[i - 1].0 : mean - low
        let right = i < centres.count - 1 ? centres[i + 1].0 - mean : high - mean
        means.append(mean)
        deviations.append(isPrior ? span : min(max(max(left, right), floor), span))
      }
    }

    static func cdf(_ z: Double) -> Double { 0.5 * erfc(-z / 2.squareRoot()) }

    func logDensity(_ x: Double) -> Double {
      var total = 0.0
      for (mean, sigma) in zip(means, deviations) {
        let mass = max(Self.cdf((high - mean) / sigma) - Self.cdf((low - mean) / sigma), 1e-12)
        let z = (x - mean) / sigma
        total += exp(-0.5 * z * z) / (sigma * (2 * Double.pi).squareRoot() * mass)
      }
      return log(max(total / Double(means.count), 1e-300))
    }

    /// A draw: a component, then its Gaussian until it falls inside (clamped after 32 tries).
    func sample(_ unit: () -> Double) -> Double {
      let component = min(Int(unit() * Double(means.count)), means.count - 1)
      for _ in 0..<32 {
        let normal = (-2 * log(max(unit(), 1e-300))).squareRoot() * cos(2 * Double.pi * unit())
        let x = means[component] + deviations[component] * normal
        if x >= low && x <= high { return x }
      }
      return min(max(means[component], low), high)
    }
  }

  static func proposeNumber(
    _ distribution: SearchDistribution, best: [SearchValue], rest: [SearchValue], candidates: Int, unit: () -> Double
  ) -> SearchValue {
    let scale = Scale(distribution)
    func internalPoints(_ group: [SearchValue]) -> [Double] {
      group.compactMap { if case .number(let v) = $0 { return scale.toInternal(v) } else { return nil } }
    }
    let l = Parzen(internalPoints(best), low: scale.low, high: scale.high)
    let g = Parzen(internalPoints(rest), low: scale.low, high: scale.high)
    var chosen = l.sample(unit)
    var bestRatio = l.logDensity(chosen) - g.logDensity(chosen)
    for _ in 1..<max(candidates, 1) {
      let x = l.sample(unit)
      let ratio = l.logDensity(x) - g.logDensity(x)
      if ratio > bestRatio { (bestRatio, chosen) = (ratio, x) }
    }
    return scale.toValue(chosen)
  }
}
