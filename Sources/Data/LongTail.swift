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

  /// Linear profile from `maximum` down to `minimum` in equal steps: the Quick, Draw!
  /// competition's 1000, 990, …, 10 is `linear(maximum: 1000, minimum: 10, classes: 100)`.
  public static func linear(maximum: Int, minimum: Int, classes: Int) -> [Int] {
    (0..<classes).map { c in
      Int((Double(maximum) - Double(c) * Double(maximum - minimum) / Double(max(classes - 1, 1))).rounded())
    }
  }

  /// A class histogram for logs: counts and the imbalance ratio (largest / smallest).
  public static func histogram(_ counts: [Int]) -> String {
    let present = counts.filter { $0 > 0 }
    let ratio = present.isEmpty ? 0 : Double(present.max()!) / Double(present.min()!)
    return "per class \(counts), imbalance \(String(format: "%.1f", ratio))×"
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
