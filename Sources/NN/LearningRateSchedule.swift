import Foundation

/// How the learning rate moves over training. `peak` is the rate the user gives.
public enum LearningRateSchedule: Codable, Equatable, Sendable {
  /// The same rate throughout.
  case constant
  /// Linear warm-up from 0 over a fraction of the steps, then a cosine to 0.
  case warmupCosine(warmupFraction: Double)
  /// PyTorch's OneCycleLR (cosine): from peak/25 up to peak over a fraction of the steps,
  /// then down to peak/25/10⁴.
  case oneCycle(warmupFraction: Double)
  /// Multiply by `factor` every `epochs` epochs.
  case step(epochs: Int, factor: Double)
  /// Multiply by `factor` when the validation metric has not improved for `patience`
  /// epochs (needs a validation set).
  case reduceOnPlateau(factor: Double, patience: Int)

  /// The rate at a step (0-based) of `totalSteps`, given the plateau factor so far.
  public func learningRate(peak: Double, step: Int, totalSteps: Int, stepsPerEpoch: Int, plateauFactor: Double) -> Double {
    let total = max(totalSteps, 1)
    switch self {
    case .constant:
      return peak
    case .warmupCosine(let fraction):
      let warmup = Int((fraction * Double(total)).rounded())
      if step < warmup { return peak * Double(step + 1) / Double(warmup) }
      let progress = Double(step - warmup) / Double(max(total - warmup, 1))
      return peak * 0.5 * (1 + cos(Double.pi * min(progress, 1)))
    case .oneCycle(let fraction):
      let initial = peak / 25
      let minimum = initial / 1e4
      let (rising, progress) = Self.oneCyclePhase(fraction: fraction, step: step, totalSteps: total)
      return rising ? Self.anneal(initial, peak, progress) : Self.anneal(peak, minimum, progress)
    case .step(let epochs, let factor):
      let epoch = step / max(stepsPerEpoch, 1)
      return peak * pow(factor, Double(epoch / max(epochs, 1)))
    case .reduceOnPlateau:
      return peak * plateauFactor
    }
  }

  /// One-cycle's momentum as PyTorch's OneCycleLR cycles it by default (`cycle_momentum`):
  /// from `maximum` down to `base` while the rate rises to its peak, back up as it falls,
  /// on the same cosines. nil for the other schedules: their momentum is the optimizer's.
  public func cycledMomentum(step: Int, totalSteps: Int, cycle: MomentumCycle = MomentumCycle()) -> Double? {
    guard case .oneCycle(let fraction) = self else { return nil }
    let (rising, progress) = Self.oneCyclePhase(fraction: fraction, step: step, totalSteps: max(totalSteps, 1))
    return rising ? Self.anneal(cycle.maximum, cycle.base, progress) : Self.anneal(cycle.base, cycle.maximum, progress)
  }

  /// Which of one-cycle's two phases a step lies in (the first ends at step
  /// fraction·total − 1, as in PyTorch), and how far into it.
  static func oneCyclePhase(fraction: Double, step: Int, totalSteps total: Int) -> (rising: Bool, progress: Double) {
    let phaseEnd = fraction * Double(total) - 1
    if Double(step) <= phaseEnd { return (true, Double(step) / max(phaseEnd, 1)) }
    return (false, min((Double(step) - phaseEnd) / max(Double(total - 1) - phaseEnd, 1), 1))
  }

  /// PyTorch's cosine annealing from `start` to `end`.
  static func anneal(_ start: Double, _ end: Double, _ progress: Double) -> Double {
    end + (start - end) / 2 * (1 + cos(Double.pi * progress))
  }
}

/// The momentum range one-cycle training cycles SGD's momentum through (PyTorch's
/// OneCycleLR `base_momentum` and `max_momentum`, with its defaults).
public struct MomentumCycle: Codable, Equatable, Sendable {
  public var base: Double
  public var maximum: Double
  public init(base: Double = 0.85, maximum: Double = 0.95) {
    self.base = base
    self.maximum = maximum
  }
}

/// The state `reduceOnPlateau` carries from epoch to epoch.
public struct PlateauState: Codable, Equatable, Sendable {
  public var factor = 1.0
  public var best: Double?
  public var epochsWithoutImprovement = 0

  public init() {}

  /// Records an epoch's metric (larger is better) and lowers the factor when due.
  public mutating func record(_ metric: Double, factor reduction: Double, patience: Int) {
    if let best, metric <= best {
      epochsWithoutImprovement += 1
      if epochsWithoutImprovement > patience {
        factor *= reduction
        epochsWithoutImprovement = 0
      }
    } else {
      best = metric
      epochsWithoutImprovement = 0
    }
  }
}
