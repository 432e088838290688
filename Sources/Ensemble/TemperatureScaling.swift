import Foundation

/// Temperature scaling (Guo et al., 2017): one scalar T dividing the logits, fitted to
/// minimise the negative log-likelihood. It changes confidence, never the predicted class.
public enum TemperatureScaling {
  /// The NLL-minimising temperature for log-probabilities (or logits) `predictions`.
  /// The NLL is convex in 1/T, so a golden-section search on 1/T ∈ [0.02, 20] finds it.
  public static func fit(_ predictions: Predictions, labels: [Int32]) -> Double {
    func nll(_ inverse: Double) -> Double { apply(predictions, temperature: 1 / inverse).metricsNLL(labels: labels) }
    var (low, high) = (0.02, 20.0)
    let ratio = (5.0.squareRoot() - 1) / 2
    var a = high - ratio * (high - low)
    var b = low + ratio * (high - low)
    var (fa, fb) = (nll(a), nll(b))
    for _ in 0..<60 {
      if fa < fb {
        high = b
        (b, fb) = (a, fa)
        a = high - ratio * (high - low)
        fa = nll(a)
      } else {
        low = a
        (a, fa) = (b, fb)
        b = low + ratio * (high - low)
        fb = nll(b)
      }
    }
    return 1 / ((low + high) / 2)
  }

  /// Predictions at temperature T: softmax(log p / T).
  public static func apply(_ predictions: Predictions, temperature: Double) -> Predictions {
    Predictions(logits: predictions.logProbabilities.map { Float($0 / temperature) }, classes: predictions.classes)
  }
}

extension Predictions {
  /// Mean negative log-likelihood of the true classes.
  func metricsNLL(labels: [Int32]) -> Double {
    var sum = 0.0
    for (row, label) in labels.enumerated() { sum -= logProbabilities[row * classes + Int(label)] }
    return sum / Double(labels.count)
  }
}
