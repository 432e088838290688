import Foundation

/// Noisy Student's pseudo-labels: the unlabelled images the ensemble is sure of, balanced
/// over the classes.
public enum PseudoLabels {
  /// Per class, the images predicted as it with probability ≥ `confidence`, most
  /// confident first (ties by index).
  static func confident(_ predictions: Predictions, confidence: Double) -> [[Int]] {
    var kept = [[(index: Int, probability: Double)]](repeating: [], count: predictions.classes)
    for row in 0..<predictions.rows {
      let label = predictions.predictedClass(row: row)
      let probability = exp(predictions.logProbabilities[row * predictions.classes + label])
      if probability >= confidence { kept[label].append((row, probability)) }
    }
    return kept.map { images in
      images.sorted { $0.probability > $1.probability || ($0.probability == $1.probability && $0.index < $1.index) }.map(\.index)
    }
  }

  /// Per class, how many images the ensemble predicts as it with probability ≥
  /// `confidence`: a class at 0 gets no pseudo-label, and the round leans towards the rest
  /// (a prior-corrected teacher is rarely confident about the head classes).
  public static func confidentCounts(_ predictions: Predictions, confidence: Double) -> [Int] {
    confident(predictions, confidence: confidence).map(\.count)
  }

  /// (image, label) pairs: per class, the confident images (above), cut to `perClass`
  /// (0: the mean of the kept counts over the classes that have any) and repeated where a
  /// class has fewer. A class with no confident image gets none.
  public static func select(_ predictions: Predictions, confidence: Double, perClass: Int) -> [(index: Int, label: Int)] {
    let kept = confident(predictions, confidence: confidence)
    let present = kept.filter { !$0.isEmpty }
    guard !present.isEmpty else { return [] }
    let target = perClass > 0 ? perClass : Int((Double(present.map(\.count).reduce(0, +)) / Double(present.count)).rounded())
    var selected: [(index: Int, label: Int)] = []
    for (label, ranked) in kept.enumerated() where !ranked.isEmpty {
      for slot in 0..<target { selected.append((ranked[slot % ranked.count], label)) }
    }
    return selected
  }
}
