import Foundation
import Tensor

/// Proposes the next trial's configuration. A sampler is a pure function of (seed, the
/// trial's index, the trials before it): a coordinator restarted mid-search that replays
/// its journal proposes exactly what it would have, with no sampler state to save.
public protocol SearchSampler: Sendable {
  var space: SearchSpace { get }
  /// The configuration of trial `index` (0-based), given the earlier trials (index of
  /// them, in order); nil when the sampler has nothing left to propose (a grid's end).
  func propose(trial index: Int, history: [SearchTrial]) -> SearchConfiguration?
}

extension SearchSampler {
  /// Trial `index`'s draw `k` ∈ [0, 1), double precision, on the search's own stream.
  static func unit(seed: UInt64, trial: Int, draw: Int) -> Double {
    let bits = RandomStream(seed: seed, purpose: .search, stream: UInt32(truncatingIfNeeded: trial)).bits(at: UInt64(draw))
    return Double(UInt64(bits.0) << 21 ^ UInt64(bits.1) >> 11) / 9_007_199_254_740_992
  }
}

/// Every combination of the settings' values, first setting slowest (the experiment's
/// grid order). Only discrete settings: choices and integer ranges.
public struct GridSampler: SearchSampler {
  public let space: SearchSpace
  let axes: [[SearchValue]]

  public init(space: SearchSpace) throws {
    self.space = space
    axes = try space.parameters.map { name, distribution in
      switch distribution {
      case .choice(let values): return values
      case .integer(let low, let high):
        guard high - low < 10_000 else { throw SearchError("\(name): a grid over \(high - low + 1) integers is too large") }
        return (low...high).map { .number(Double($0)) }
      case .uniform, .logUniform:
        throw SearchError("\(name): a grid needs discrete values (a choice or an integer range), not a continuous range")
      }
    }
  }

  /// The number of configurations.
  public var count: Int { axes.reduce(1) { $0 * $1.count } }

  public func propose(trial index: Int, history: [SearchTrial]) -> SearchConfiguration? {
    guard index < count else { return nil }
    var rest = index
    var configuration = [SearchValue](repeating: .number(0), count: axes.count)
    for axis in stride(from: axes.count - 1, through: 0, by: -1) {
      configuration[axis] = axes[axis][rest % axes[axis].count]
      rest /= axes[axis].count
    }
    return configuration
  }
}

/// Each setting drawn independently from its distribution.
public struct RandomSampler: SearchSampler {
  public let space: SearchSpace
  public let seed: UInt64

  public init(space: SearchSpace, seed: UInt64) {
    self.space = space
    self.seed = seed
  }

  public func propose(trial index: Int, history: [SearchTrial]) -> SearchConfiguration? {
    space.parameters.enumerated().map { k, parameter in parameter.distribution.value(at: Self.unit(seed: seed, trial: index, draw: k)) }
  }
}
