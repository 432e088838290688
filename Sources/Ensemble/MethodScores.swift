import Training

/// A method's scores: out-of-fold (cross-validated where the method is fitted) and on the
/// test set when it is labelled.
public struct MethodScores: Sendable {
  public var name: String
  public var outOfFold: ClassificationMetrics
  public var test: ClassificationMetrics?

  public init(name: String, outOfFold: ClassificationMetrics, test: ClassificationMetrics?) {
    self.name = name
    self.outOfFold = outOfFold
    self.test = test
  }
}

extension MethodScores {
  /// Each method's scores (on the test set too where it is labelled).
  public static func of(_ results: [MethodResult], labels: [Int32], testLabels: [Int32]?) -> [MethodScores] {
    results.map { result in
      MethodScores(
        name: result.name, outOfFold: result.outOfFold.metrics(labels: labels),
        test: testLabels.flatMap { labels in result.test.map { $0.metrics(labels: labels) } })
    }
  }

  /// The method whose out-of-fold objective is best (the first on a tie).
  public static func best(_ scores: [MethodScores], objective: Metric) -> Int {
    var best = 0
    for (index, score) in scores.enumerated() where score.outOfFold.score(objective) > scores[best].outOfFold.score(objective) { best = index }
    return best
  }

  /// Each member's scores, named "member NAME".
  public static func of(_ members: [Member], labels: [Int32], testLabels: [Int32]?) -> [MethodScores] {
    members.map { member in
      MethodScores(
        name: "member \(member.name)", outOfFold: member.outOfFold.metrics(labels: labels),
        test: testLabels.flatMap { labels in member.test.map { $0.metrics(labels: labels) } })
    }
  }
}
