import Ensemble
import Foundation
import XCTest

/// The dense meta-learner: its gradient, what it learns that the logistic stacker cannot,
/// and that the same library always gives the same stacker.
final class MLPStackerTests: XCTestCase {
  typealias Noise = EnsembleMethodTests.Noise

  /// Two members over two classes whose predicted classes are independent coin flips; the
  /// label is 1 when they disagree (an XOR), which no weighted sum of their
  /// log-probabilities can express.
  func disagreementLibrary(rows: Int, seed: UInt64) -> (members: [Predictions], labels: [Int32]) {
    var random = Noise(state: seed)
    var a: [Float] = []
    var b: [Float] = []
    var labels: [Int32] = []
    for _ in 0..<rows {
      let (ca, cb) = (random.next() < 0.5 ? 0 : 1, random.next() < 0.5 ? 0 : 1)
      for c in 0..<2 {
        a.append(Float((c == ca ? 2 : 0) + 0.3 * random.normal()))
        b.append(Float((c == cb ? 2 : 0) + 0.3 * random.normal()))
      }
      labels.append(ca == cb ? 0 : 1)
    }
    return ([Predictions(logits: a, classes: 2), Predictions(logits: b, classes: 2)], labels)
  }

  func testGradientMatchesFiniteDifferences() {
    let (members, labels) = disagreementLibrary(rows: 40, seed: 1)
    let weights = (0..<40).map { 0.5 + Double($0 % 3) }
    let stacker = MLPStacker(members: 2, classes: 2, hidden: 5, l2: 0.1, seed: 3)
    var point = stacker.parameters
    for i in point.indices { point[i] += 0.1 * sin(Double(i)) }  // biases away from zero too
    let analytic = stacker.objective(at: point, members, labels: labels, exampleWeights: weights).gradient
    let step = 1e-6
    for i in point.indices {
      var (plus, minus) = (point, point)
      plus[i] += step
      minus[i] -= step
      let numeric = (stacker.objective(at: plus, members, labels: labels, exampleWeights: weights).value
        - stacker.objective(at: minus, members, labels: labels, exampleWeights: weights).value) / (2 * step)
      XCTAssertEqual(analytic[i], numeric, accuracy: 1e-6 + 1e-4 * abs(numeric), "parameter \(i)")
    }
  }

  func testLearnsAnInteractionTheLogisticStackerCannot() {
    let training = disagreementLibrary(rows: 2000, seed: 2)
    let held = disagreementLibrary(rows: 1000, seed: 3)
    var mlp = MLPStacker(members: 2, classes: 2, hidden: 8, l2: 1e-3)
    mlp.fit(training.members, labels: training.labels)
    var logistic = LogisticStacker(members: 2, classes: 2)
    logistic.fit(training.members, labels: training.labels)
    let mlpAccuracy = mlp.predict(held.members).metrics(labels: held.labels).accuracy
    let logisticAccuracy = logistic.predict(held.members).metrics(labels: held.labels).accuracy
    XCTAssertGreaterThan(mlpAccuracy, 0.95)
    XCTAssertLessThan(logisticAccuracy, 0.7)
  }

  /// A fixed seed and full-batch L-BFGS: fitting twice gives the same stacker, and the
  /// submitted combiner survives its JSON file (what `quorum predict` reads).
  func testFitIsReproducibleAndRoundTripsThroughJSON() throws {
    let (members, labels) = disagreementLibrary(rows: 300, seed: 4)
    var first = MLPStacker(members: 2, classes: 2, hidden: 4)
    var second = MLPStacker(members: 2, classes: 2, hidden: 4)
    first.fit(members, labels: labels)
    second.fit(members, labels: labels)
    XCTAssertEqual(first, second)
    let combiner = Combiner.mlpStacking(first)
    let decoded = try JSONDecoder().decode(Combiner.self, from: JSONEncoder().encode(combiner))
    XCTAssertEqual(decoded, combiner)
    XCTAssertEqual(decoded.apply(members).logProbabilities, first.predict(members).logProbabilities)
  }
}
