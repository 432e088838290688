import Data
import Ensemble
import Foundation
import Report
import Training
import QuorumTestSupport
import XCTest

/// The ensembling methods on libraries where the answer is known.
final class EnsembleMethodTests: XCTestCase {
  /// A seeded generator for the synthetic libraries.
  struct Noise {
    var state: UInt64
    mutating func next() -> Double {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Double(state >> 11) / Double(1 << 53)
    }
    mutating func normal() -> Double { (-2 * log(max(next(), 1e-12))).squareRoot() * cos(2 * .pi * next()) }
  }

  let classes = 3

  func labels(_ count: Int) -> [Int32] { (0..<count).map { Int32($0 % 3) } }

  /// A member whose logits favour the true class by `signal`, plus noise of size `noise`.
  func member(_ labels: [Int32], signal: Double, noise: Double, seed: UInt64) -> Predictions {
    var random = Noise(state: seed)
    var logits: [Float] = []
    for label in labels {
      for c in 0..<classes { logits.append(Float((c == Int(label) ? signal : 0) + noise * random.normal())) }
    }
    return Predictions(logits: logits, classes: classes)
  }

  func nll(_ p: Predictions, _ labels: [Int32]) -> Double { p.metrics(labels: labels).negativeLogLikelihood }

  /// The competition's metric picks the submission: on ordinal labels, a method that is
  /// right more often but far off when wrong wins by accuracy and loses by quadratic kappa.
  func testTheSubmissionIsTheBestMethodByTheObjective() {
    let classes = 5
    let labels = (0..<200).map { Int32($0 % classes) }
    func method(_ name: String, _ guess: (Int, Int) -> Int) -> MethodScores {
      let logits = labels.enumerated().flatMap { row, label in (0..<classes).map { Float($0 == guess(row, Int(label)) ? 4 : 0) } }
      return MethodScores(name: name, outOfFold: Predictions(logits: logits, classes: classes).metrics(labels: labels), test: nil)
    }
    let farWhenWrong = method("far") { row, label in row % 10 < 6 ? label : (label + 3) % classes }
    let nearWhenWrong = method("near") { row, label in row % 10 < 5 ? label : (label == 0 ? 1 : label - 1) }
    XCTAssertGreaterThan(farWhenWrong.outOfFold.accuracy, nearWhenWrong.outOfFold.accuracy)
    XCTAssertGreaterThan(nearWhenWrong.outOfFold.score(.quadraticKappa), farWhenWrong.outOfFold.score(.quadraticKappa))
    XCTAssertEqual(MethodScores.best([farWhenWrong, nearWhenWrong], objective: .accuracy), 0)
    XCTAssertEqual(MethodScores.best([farWhenWrong, nearWhenWrong], objective: .quadraticKappa), 1)
    XCTAssert(EnsembleOutputs.table([farWhenWrong, nearWhenWrong], chosen: 1, objective: .quadraticKappa).hasPrefix("| method | OOF quadratic_kappa | test quadratic_kappa |"))
  }

  /// Ordinal labels whose members squeeze the scale (their distributions centred at
  /// 0.6·y + 0.8, so the argmax says 2 for a 4): the expected class cut at thresholds fitted
  /// out of fold raises kappa well above the soft vote's; the method exists only for a
  /// kappa objective, and its combiner reproduces its test predictions after a JSON round
  /// trip (what `quorum predict` applies).
  func testKappaThresholdsUndoASqueezedOrdinalScale() throws {
    let classes = 5
    let y = (0..<1000).map { Int32($0 % classes) }
    func squeezed(_ seed: UInt64, count: Int) -> Predictions {
      var random = Noise(state: seed)
      var logits: [Float] = []
      for row in 0..<count {
        let centre = 0.6 * (Double(row % classes) + 0.7 * random.normal()) + 0.8
        for c in 0..<classes { logits.append(Float(-(Double(c) - centre) * (Double(c) - centre) / 0.5)) }
      }
      return Predictions(logits: logits, classes: classes)
    }
    let library = (1...3).map { Member(name: "m\($0)", outOfFold: squeezed($0, count: 1000), test: squeezed($0 + 10, count: 200)) }
    let folds = FoldAssignment(fold: (0..<1000).map { Int32(($0 / 7) % 5) }, count: 5)
    var settings = EnsembleSettings()
    settings.objective = .quadraticKappa
    let results = EnsembleMethods(members: library, labels: y, folds: folds, settings: settings).run()
    let soft = try XCTUnwrap(results.first { $0.name == "soft vote" })
    let tuned = try XCTUnwrap(results.first { $0.name.hasPrefix("soft vote + kappa thresholds") })
    let softKappa = soft.outOfFold.metrics(labels: y).score(.quadraticKappa)
    let tunedKappa = tuned.outOfFold.metrics(labels: y).score(.quadraticKappa)
    XCTAssertGreaterThan(tunedKappa, softKappa + 0.05, "thresholds \(tuned.name): \(tunedKappa) against the soft vote's \(softKappa)")
    let decoded = try JSONDecoder().decode(Combiner.self, from: JSONEncoder().encode(tuned.combiner))
    XCTAssertEqual(decoded.apply(library.map { $0.test! }), tuned.test)
    settings.objective = .accuracy
    XCTAssertNil(EnsembleMethods(members: library, labels: y, folds: folds, settings: settings).run().first { $0.name.contains("thresholds") })
  }

  func testCaruanaPicksAPerfectMemberAlone() {
    let y = labels(600)
    let library = [member(y, signal: 1, noise: 1, seed: 1), member(y, signal: 12, noise: 0.1, seed: 2), member(y, signal: 1.5, noise: 1, seed: 3)]
    let weights = CaruanaSelection(objective: .negativeLogLikelihood, iterations: 20).fit(library, labels: y)
    XCTAssertEqual(weights[1], 1, accuracy: 1e-12, "\(weights)")
  }

  /// Selection with replacement: a copy of a member changes nothing.
  func testCaruanaIsUnmovedByCopies() {
    let y = labels(600)
    let a = member(y, signal: 2, noise: 1.5, seed: 4)
    let b = member(y, signal: 1.5, noise: 1.5, seed: 5)
    let selection = CaruanaSelection(objective: .negativeLogLikelihood, iterations: 30)
    let plain = selection.fit([a, b], labels: y)
    let copied = selection.fit([a, a, b], labels: y)
    XCTAssertEqual(copied[0] + copied[1], plain[0], accuracy: 1e-12, "\(copied) against \(plain)")
    XCTAssertEqual(copied[2], plain[1], accuracy: 1e-12)
    XCTAssertEqual(nll(Predictions.mixture([a, a, b], weights: copied), y), nll(Predictions.mixture([a, b], weights: plain), y), accuracy: 1e-12)
  }

  /// Two members, each right only on its half: alone 50 % accurate at best; together they
  /// are right everywhere, and Caruana takes both, equally.
  func testCaruanaCombinesAnAntiCorrelatedPair() {
    let y = labels(600)
    func half(_ first: Bool) -> Predictions {
      var logits: [Float] = []
      for (row, label) in y.enumerated() {
        let knows = (row < 300) == first
        for c in 0..<classes { logits.append(knows ? (c == Int(label) ? 6 : 0) : (c == (Int(label) + 1) % classes ? 0.5 : 0)) }
      }
      return Predictions(logits: logits, classes: classes)
    }
    let pair = [half(true), half(false)]
    for member in pair { XCTAssertLessThanOrEqual(member.metrics(labels: y).accuracy, 0.5 + 1e-9) }
    for objective in [Metric.accuracy, .negativeLogLikelihood] {
      let weights = CaruanaSelection(objective: objective, iterations: 20).fit(pair, labels: y)
      XCTAssertEqual(weights[0], 0.5, accuracy: 0.06, "\(objective): \(weights)")
      XCTAssertEqual(Predictions.mixture(pair, weights: weights).metrics(labels: y).accuracy, 1, "\(objective)")
    }
    // Bagging averages selections on random halves of the library: still both.
    let bagged = CaruanaSelection(objective: .negativeLogLikelihood, iterations: 20, bags: 8).fit(pair + pair, labels: y)
    XCTAssertGreaterThan(bagged[0] + bagged[2], 0.3)
    XCTAssertGreaterThan(bagged[1] + bagged[3], 0.3)
  }

  /// The NLL-optimal simplex weights beat equal weights and every corner on the NLL they
  /// optimise; a useless member gets (almost) nothing.
  func testSimplexWeightsMinimiseTheNLL() {
    let y = labels(900)
    let library = [member(y, signal: 2.5, noise: 1, seed: 6), member(y, signal: 2, noise: 1, seed: 7), member(y, signal: 0, noise: 1, seed: 8)]
    let weights = SimplexWeights().fit(library, labels: y)
    XCTAssertEqual(weights.reduce(0, +), 1, accuracy: 1e-9)
    XCTAssertLessThan(weights[2], 0.05, "\(weights)")
    let fitted = nll(Predictions.mixture(library, weights: weights), y)
    XCTAssertLessThanOrEqual(fitted, nll(Predictions.mixture(library, weights: [1, 1, 1]), y))
    for corner in 0..<3 { XCTAssertLessThan(fitted, nll(library[corner], y)) }
  }

  /// Labels drawn from softmax(2·log p_A + 0.5·log p_B): stacking recovers 2 and 0.5 as
  /// the weights of each member's log-probability of the class itself.
  func testStackingRecoversKnownWeights() {
    let count = 20_000
    var random = Noise(state: 9)
    let a = member((0..<count).map { _ in Int32(Int(random.next() * 3)) }, signal: 1, noise: 1, seed: 10)
    let b = member((0..<count).map { _ in Int32(Int(random.next() * 3)) }, signal: 1, noise: 1, seed: 11)
    var y: [Int32] = []
    for row in 0..<count {
      let scores = (0..<classes).map { 2 * a.logProbabilities[row * classes + $0] + 0.5 * b.logProbabilities[row * classes + $0] }
      let total = scores.map(exp).reduce(0, +)
      var u = random.next() * total
      var label = 0
      while label < classes - 1 && u > exp(scores[label]) { u -= exp(scores[label]); label += 1 }
      y.append(Int32(label))
    }
    var stacker = LogisticStacker(members: 2, classes: classes, l2: 0)
    stacker.fit([a, b], labels: y)
    let width = 2 * classes + 1
    // Softmax is unchanged by adding a constant to every class's weight on a feature, so
    // compare each weight with its feature's mean over the classes.
    for (m, expected) in [(0, 2.0), (1, 0.5)] {
      for c in 0..<classes {
        let feature = m * classes + c
        let mean = (0..<classes).map { stacker.coefficients[$0 * width + feature] }.reduce(0, +) / Double(classes)
        XCTAssertEqual(stacker.coefficients[c * width + feature] - mean, expected * Double(classes - 1) / Double(classes), accuracy: 0.12, "member \(m), class \(c)")
      }
    }
  }

  /// An overconfident member (logits ×4): temperature scaling finds T ≈ 4 and lowers the
  /// NLL without changing a single prediction.
  func testTemperatureScalingLowersTheNLLOfAMiscalibratedMember() {
    let y = labels(3000)
    var random = Noise(state: 12)
    var calibrated: [Float] = []
    for label in y { for c in 0..<classes { calibrated.append(Float((c == Int(label) ? 1.2 : 0) + random.normal())) } }
    let overconfident = Predictions(logits: calibrated.map { $0 * 4 }, classes: classes)
    let temperature = TemperatureScaling.fit(overconfident, labels: y)
    XCTAssertEqual(temperature, 4, accuracy: 0.5)
    let scaled = TemperatureScaling.apply(overconfident, temperature: temperature)
    XCTAssertLessThan(nll(scaled, y), nll(overconfident, y) * 0.8)
    XCTAssertEqual((0..<y.count).map(scaled.predictedClass), (0..<y.count).map(overconfident.predictedClass))
  }

  /// A library of independent, equally good members: every combination beats the best
  /// member on balanced accuracy, scored out of fold (fitted methods by cross-validation).
  func testEnsemblesBeatTheBestMemberOnIndependentMembers() throws {
    let y = labels(1500)
    let folds = FoldAssignment(fold: (0..<1500).map { Int32($0 % 5) }, count: 5)
    let library = (0..<5).map { Member(name: "m\($0)", outOfFold: member(y, signal: 1, noise: 1.2, seed: 20 + UInt64($0)), test: nil) }
    let results = EnsembleMethods(members: library, labels: y, folds: folds, settings: EnsembleSettings()).run()
    let best = results[0].outOfFold.metrics(labels: y).balancedAccuracy
    XCTAssertEqual(results.map(\.name).count, 9)
    for result in results.dropFirst() {
      XCTAssertGreaterThan(result.outOfFold.metrics(labels: y).balancedAccuracy, best + 0.03, result.name)
    }
  }

  /// User weights: a member left out weighs nothing, the rest are normalised, and the
  /// vote is the weighted mean of the probabilities.
  func testUserWeightedVote() {
    let y = labels(300)
    let folds = FoldAssignment(fold: (0..<300).map { Int32($0 % 3) }, count: 3)
    let library = (0..<3).map { Member(name: "m\($0)", outOfFold: member(y, signal: 1, noise: 1, seed: 40 + UInt64($0)), test: nil) }
    var settings = EnsembleSettings()
    settings.userWeights = ["m0": 3, "m2": 1]
    let results = EnsembleMethods(members: library, labels: y, folds: folds, settings: settings).run()
    let user = results.first { $0.name == "user-weighted vote" }!
    XCTAssertEqual(user.weights, [0.75, 0, 0.25])
    XCTAssertEqual(user.outOfFold.logProbabilities, Predictions.mixture([library[0].outOfFold, library[2].outOfFold], weights: [3, 1]).logProbabilities)
    XCTAssertNil(EnsembleMethods(members: library, labels: y, folds: folds, settings: EnsembleSettings()).run().first { $0.name == "user-weighted vote" })
  }

  /// A student's targets: α·onehot + (1 − α)·softmax(log p / T), rows summing to 1; the
  /// teacher alone where there is no label; T > 1 flattens the teacher.
  func testDistillationTargetsMixLabelsWithASoftenedTeacher() {
    let teacher = Predictions(logits: [4, 1, 0, 0, 0, 3], classes: 3)
    let mixed = Distillation(temperature: 1, hardLabelWeight: 0.25).targets(teacher: teacher, labels: [1, 2])
    let p = teacher.logProbabilities.map(exp)
    for c in 0..<3 {
      XCTAssertEqual(Double(mixed[c]), 0.75 * p[c] + (c == 1 ? 0.25 : 0), accuracy: 1e-6)
      XCTAssertEqual(Double(mixed[3 + c]), 0.75 * p[3 + c] + (c == 2 ? 0.25 : 0), accuracy: 1e-6)
    }
    let unlabelled = Distillation(temperature: 1, hardLabelWeight: 0.25).targets(teacher: teacher, labels: nil)
    for i in 0..<6 { XCTAssertEqual(Double(unlabelled[i]), p[i], accuracy: 1e-6) }
    let soft = Distillation(temperature: 4, hardLabelWeight: 0).targets(teacher: teacher, labels: nil)
    XCTAssertEqual(soft[0..<3].reduce(0, +), 1, accuracy: 1e-6)
    XCTAssertLessThan(Double(soft[0]), p[0], "a higher temperature lowers the teacher's top probability")
    XCTAssertGreaterThan(Double(soft[2]), p[2])
  }

  /// On imbalanced data, members that learnt the class prior under-predict the rare
  /// classes; dividing the vote by the prior (cross-validated like the rest) lifts
  /// balanced accuracy, and the class-balanced stacker beats the plain soft vote.
  func testPriorCorrectionLiftsBalancedAccuracyOnImbalancedData() {
    // Class 0: 80 % of the examples; the members add log(prior) to their logits.
    let labels = (0..<2000).map { Int32($0 % 10 < 8 ? 0 : ($0 % 10 == 8 ? 1 : 2)) }
    let logPrior = [log(0.8), log(0.1), log(0.1)]
    let members = (0..<3).map { m -> Member in
      var random = Noise(state: 40 + UInt64(m))
      var logits: [Float] = []
      for label in labels {
        for c in 0..<classes { logits.append(Float((c == Int(label) ? 1.5 : 0) + logPrior[c] + random.normal())) }
      }
      return Member(name: "m\(m)", outOfFold: Predictions(logits: logits, classes: classes), test: nil)
    }
    // Stratified: every fold holds every class (fold = block of ten examples, mod 5).
    let folds = FoldAssignment(fold: (0..<2000).map { Int32(($0 / 10) % 5) }, count: 5)
    let results = EnsembleMethods(members: members, labels: labels, folds: folds, settings: EnsembleSettings()).run()
    func balanced(_ name: String) throws -> Double {
      try XCTUnwrap(results.first { $0.name.hasPrefix(name) }).outOfFold.metrics(labels: labels).balancedAccuracy
    }
    XCTAssertGreaterThan(try balanced("soft vote + prior correction"), try balanced("soft vote") + 0.05)
    XCTAssertGreaterThan(try balanced("stacking (logistic regression, class-balanced)"), try balanced("soft vote") + 0.05)
  }

  /// Pseudo-labels: only confident images, the most confident first, the same number per
  /// class (a short class repeated), none for a class the ensemble is never sure of.
  func testPseudoLabelsAreConfidentAndBalanced() {
    // Rows: class 0 sure ×3 (0.9, 0.95, 0.99), class 1 sure ×1 (0.92), class 2 unsure.
    func row(_ p: [Double]) -> [Float] { p.map { Float(log($0)) } }
    let logits = row([0.9, 0.05, 0.05]) + row([0.95, 0.03, 0.02]) + row([0.99, 0.005, 0.005]) + row([0.04, 0.92, 0.04])
      + row([0.3, 0.3, 0.4]) + row([0.6, 0.2, 0.2])
    let predictions = Predictions(logits: logits, classes: 3)
    let chosen = PseudoLabels.select(predictions, confidence: 0.85, perClass: 0)
    // Mean kept count over classes with any: (3 + 1) / 2 = 2 per class.
    XCTAssertEqual(chosen.map(\.index), [2, 1, 3, 3])
    XCTAssertEqual(chosen.map(\.label), [0, 0, 1, 1])
    XCTAssertEqual(PseudoLabels.select(predictions, confidence: 0.85, perClass: 3).map(\.index), [2, 1, 0, 3, 3, 3])
    XCTAssertTrue(PseudoLabels.select(predictions, confidence: 0.999, perClass: 0).isEmpty)
    // Class 2 has no confident image: the count that warns the user is 0.
    XCTAssertEqual(PseudoLabels.confidentCounts(predictions, confidence: 0.85), [3, 1, 0])
    XCTAssertEqual(PseudoLabels.confidentCounts(predictions, confidence: 0.35), [4, 1, 1])
  }
}
