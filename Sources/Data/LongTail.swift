#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Reproducible long-tailed training sets (no randomness: any language builds the same).
public enum LongTail {
  /// Exponential profile: class c keeps floor(maximum · ratio^(−c/(K−1))) examples.
  /// FMNIST-LT-100 is `exponential(maximum: 6000, ratio: 100, classes: 10)`.
  public static func exponential(maximum: Int, ratio: Double, classes: Int) -> [Int] {
    (0..<classes).map { c in
      Int((Double(maximum) * pow(ratio, -Double(c) / Double(max(classes - 1, 1)))).rounded(.down))
    }
  }

  /// Keeps the first `counts[c]` examples of each class c, in file order.
  public static func firstPerClass(_ dataset: ImageDataset, counts: [Int]) -> ImageDataset {
    var remaining = counts
    var kept: [Int] = []
    for (index, label) in dataset.labels.enumerated() where remaining[Int(label)] > 0 {
      remaining[Int(label)] -= 1
      kept.append(index)
    }
    return dataset.subset(kept)
  }
}
