import Foundation
import Training

/// Thresholds on the expected class, for ordinal labels scored by quadratic weighted kappa
/// (the "optimised rounder" of Kaggle's ordinal competitions): the class is the number of
/// thresholds below E[c] = Σ c·p_c. Kappa rewards being near the truth, which the argmax
/// ignores; the expected class moves with the whole distribution, and thresholds fitted on
/// the out-of-fold predictions place the cuts where kappa is highest.
public struct OrdinalThresholds: Codable, Equatable, Sendable {
  /// Ascending, one fewer than the classes; the default cuts are halfway (c − ½).
  public var cuts: [Double]

  public init(classes: Int) { cuts = (1..<max(classes, 1)).map { Double($0) - 0.5 } }

  /// E[c] of each row.
  static func expectedClasses(_ predictions: Predictions) -> [Double] {
    (0..<predictions.rows).map { row in
      (0..<predictions.classes).reduce(0.0) { $0 + Double($1) * exp(predictions.logProbabilities[row * predictions.classes + $1]) }
    }
  }

  func classOf(_ expected: Double) -> Int { cuts.reduce(0) { expected > $1 ? $0 + 1 : $0 } }

  /// Coordinate ascent on kappa: each cut in turn moved to the best of 50 places between
  /// its neighbours, three passes (a deterministic search; kappa is piecewise constant in
  /// the cuts, so a gradient has nothing to follow).
  public static func fit(_ predictions: Predictions, labels: [Int32]) -> OrdinalThresholds {
    let classes = predictions.classes
    var thresholds = OrdinalThresholds(classes: classes)
    let expected = expectedClasses(predictions)
    func kappa(_ candidate: OrdinalThresholds) -> Double {
      candidate.assign(expected, classes: classes).metrics(labels: labels).score(.quadraticKappa)
    }
    var best = kappa(thresholds)
    for _ in 0..<3 {
      for k in thresholds.cuts.indices {
        let low = k == 0 ? -0.5 : thresholds.cuts[k - 1], high = k == thresholds.cuts.count - 1 ? Double(classes) - 0.5 : thresholds.cuts[k + 1]
        for step in 1..<50 {
          var candidate = thresholds
          candidate.cuts[k] = low + (high - low) * Double(step) / 50
          let score = kappa(candidate)
          if score > best + 1e-12 { (best, thresholds) = (score, candidate) }
        }
      }
    }
    return thresholds
  }

  /// The thresholded classes of `predictions`, as a distribution: nearly all the mass on
  /// the class (a hundredth spread as the predictions' own), so that its argmax is that
  /// class and its log-likelihood stays finite.
  public func apply(_ predictions: Predictions) -> Predictions {
    let spread = 0.01
    let chosen = Self.expectedClasses(predictions).map(classOf)
    var values = predictions.logProbabilities
    for row in 0..<predictions.rows {
      for c in 0..<predictions.classes {
        let index = row * predictions.classes + c
        values[index] = log(((c == chosen[row] ? 1 : 0) + spread * exp(values[index])) / (1 + spread))
      }
    }
    return Predictions(rows: predictions.rows, classes: predictions.classes, logProbabilities: values)
  }

  /// One-hot distributions of the thresholded expected classes (the fit's scoring).
  func assign(_ expected: [Double], classes: Int) -> Predictions {
    var values = [Double](repeating: log(1e-9), count: expected.count * classes)
    for (row, value) in expected.enumerated() { values[row * classes + classOf(value)] = 0 }
    return Predictions(rows: expected.count, classes: classes, logProbabilities: values)
  }
}
