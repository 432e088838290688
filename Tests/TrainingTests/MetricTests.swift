import Foundation
import Training
import XCTest

/// The competition metrics against scikit-learn's values on the same predictions
/// (Fixtures/make_sklearn_metrics.py writes them).
final class MetricTests: XCTestCase {
  struct Case: Decodable {
    var name: String
    var classes: Int
    var labels: [Int32]
    var logits: [Float]
    var expected: [String: Double]
  }

  func cases() throws -> [Case] {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "sklearn_metrics", withExtension: "json", subdirectory: "Fixtures"))
    struct File: Decodable { var cases: [Case] }
    return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
  }

  func testEveryMetricMatchesScikitLearn() throws {
    let cases = try cases()
    XCTAssertEqual(cases.count, 3)
    for test in cases {
      let fromLogits = test.logits.withUnsafeBufferPointer {
        ClassificationMetrics.compute(logits: $0.baseAddress!, labels: test.labels, classes: test.classes)
      }
      // The ensembles score mixtures of probabilities: the same values from the softmax.
      var probabilities: [Double] = []
      for row in 0..<test.labels.count {
        let values = test.logits[(row * test.classes)..<((row + 1) * test.classes)].map(Double.init)
        let largest = values.max()!
        let sum = values.reduce(0) { $0 + exp($1 - largest) }
        probabilities += values.map { exp($0 - largest) / sum }
      }
      let fromProbabilities = ClassificationMetrics.compute(probabilities: probabilities, labels: test.labels, classes: test.classes)
      XCTAssertEqual(test.expected.count, 11)
      for (spelling, expected) in test.expected.sorted(by: { $0.key < $1.key }) {
        let metric = try XCTUnwrap(Metric(spelling), spelling)
        XCTAssertEqual(metric.spelling, spelling, "the spelling reads back")
        XCTAssertNoThrow(try metric.check(classes: test.classes))
        XCTAssertEqual(metric.value(fromLogits), expected, accuracy: 1e-9, "\(test.name): \(spelling)")
        XCTAssertEqual(metric.value(fromProbabilities), expected, accuracy: 1e-9, "\(test.name): \(spelling) of probabilities")
      }
      // Larger is better for every score, the NLL included.
      XCTAssertEqual(fromLogits.score(.negativeLogLikelihood), -fromLogits.negativeLogLikelihood)
    }
  }

  /// What a user mistypes is refused, and a metric that needs the class count is checked
  /// against it.
  func testSpellingsAreCheckedAndWeightsMustMatchTheClasses() throws {
    for bad in ["kappa", "f_beta", "f_beta:0", "f_beta:-1", "f_beta:nan", "map_at_k:0", "map_at_k:2.5", "weighted_recall", "weighted_recall:0,0",
      "weighted_recall:1,-1", "weighted_recall:1,x", "accuracy:2", "nll:1"]
    {
      XCTAssertNil(Metric(bad), bad)
    }
    XCTAssertEqual(Metric("f_beta:2"), .fBeta(2))
    XCTAssertEqual(Metric("map_at_k:5"), .mapAtK(5))
    XCTAssertEqual(Metric("weighted_recall:1,0.5,2"), .weightedRecall([1, 0.5, 2]))
    XCTAssertThrowsError(try Metric.weightedRecall([1, 2]).check(classes: 3)) {
      XCTAssert("\($0)".contains("2 class weights for 3 classes"), "\($0)")
    }
    // Stored as its spelling: a training state written with the old names still reads.
    let encoded = try JSONEncoder().encode([Metric.fBeta(0.5), .balancedAccuracy])
    XCTAssertEqual(String(decoding: encoded, as: UTF8.self), #"["f_beta:0.5","balanced_accuracy"]"#)
    XCTAssertEqual(try JSONDecoder().decode([Metric].self, from: encoded), [.fBeta(0.5), .balancedAccuracy])
  }

  /// The fits lean the way a weighted metric does: each class's examples together weigh
  /// in proportion to the competition's weight for it.
  func testExampleWeightsFollowTheMetricsClassWeights() throws {
    let labels: [Int32] = [0, 0, 0, 1, 2, 2]
    let weights = try XCTUnwrap(Metric.weightedRecall([1, 1, 4]).exampleWeights(labels, classes: 3))
    func total(_ c: Int32) -> Double { zip(labels, weights).filter { $0.0 == c }.reduce(0) { $0 + $1.1 } }
    XCTAssertEqual(total(0), total(1), accuracy: 1e-12)
    XCTAssertEqual(total(2), 4 * total(0), accuracy: 1e-12)
    XCTAssertEqual(weights.reduce(0, +) / 6, 1, accuracy: 1e-12)
    let balanced = try XCTUnwrap(Metric.balancedAccuracy.exampleWeights(labels, classes: 3))
    XCTAssertEqual(zip(labels, balanced).filter { $0.0 == 0 }.reduce(0) { $0 + $1.1 }, 2, accuracy: 1e-12)
    XCTAssertNil(Metric.quadraticKappa.exampleWeights(labels, classes: 3))
  }
}
