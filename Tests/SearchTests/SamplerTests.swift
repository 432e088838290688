import Foundation
import Search
import XCTest

final class SamplerTests: XCTestCase {
  func space() throws -> SearchSpace {
    try SearchSpace([
      ("learning_rate", .logUniform(low: 1e-5, high: 1)),
      ("dropout", .uniform(low: 0, high: 1)),
      ("epochs", .integer(low: 1, high: 8)),
      ("optimizer", .choice([.text("sgd"), .text("adamw"), .text("lion"), .text("rmsprop")])),
    ])
  }

  /// A known objective over the space (larger is better), its maximum 0 at
  /// learning_rate 10^−2.5, dropout 0.7, epochs 6, adamw.
  func objective(_ configuration: SearchConfiguration) -> Double {
    guard case .number(let rate) = configuration[0], case .number(let dropout) = configuration[1],
      case .number(let epochs) = configuration[2], case .text(let optimizer) = configuration[3]
    else { preconditionFailure("\(configuration)") }
    let a = log10(rate) + 2.5, b = dropout - 0.7, c = epochs - 6
    return -(a * a) - 4 * b * b - 0.1 * c * c - (optimizer == "adamw" ? 0 : 0.5)
  }

  /// The best score after `trials` proposals of `sampler`, each scored as it comes.
  func bestAfter(_ trials: Int, _ sampler: SearchSampler) -> Double {
    var history: [SearchTrial] = []
    for index in 0..<trials {
      let configuration = sampler.propose(trial: index, history: history)!
      history.append(SearchTrial(configuration: configuration, score: objective(configuration)))
    }
    return history.compactMap(\.score).max()!
  }

  /// Mean shortfall from the maximum after `trials`, over 12 seeds, of TPE and of random
  /// search, and on how many seeds TPE is ahead.
  func race(_ space: SearchSpace, trials: Int) -> (tpe: Double, random: Double, tpeAhead: Int) {
    var result = (tpe: 0.0, random: 0.0, tpeAhead: 0)
    for seed in 0..<12 {
      let tpe = -bestAfter(trials, TPESampler(space: space, seed: UInt64(seed)))
      let random = -bestAfter(trials, RandomSampler(space: space, seed: UInt64(seed)))
      result.tpe += tpe / 12
      result.random += random / 12
      if tpe < random { result.tpeAhead += 1 }
    }
    return result
  }

  /// TPE finds the maximum of the numeric settings (a log-uniform rate, a uniform dropout,
  /// an integer) faster than random search: after 60 trials its mean shortfall over 12
  /// seeds is under a third of random search's (measured: 0.033 against 0.176), and it is
  /// ahead on at least 10 seeds.
  func testTPEFindsTheOptimumFasterThanRandomSearch() throws {
    let numeric = try SearchSpace(Array(try space().parameters.prefix(3)) + [("optimizer", .choice([.text("adamw")]))])
    let (tpe, random, ahead) = race(numeric, trials: 60)
    XCTAssertLessThan(tpe, random / 3, "mean shortfall: TPE \(tpe), random \(random)")
    XCTAssertGreaterThanOrEqual(ahead, 10, "TPE ahead on \(ahead) of 12 seeds")
  }

  /// With a four-way choice as well, TPE still beats random search on average (0.30
  /// against 0.51 after 60 trials), though by less: modelling each setting on its own, it
  /// keeps the choice its first good trials had (Optuna's univariate TPE does the same), so
  /// some seeds stay on a wrong optimizer while the numbers converge.
  func testTPEWithAChoiceStillBeatsRandomSearch() throws {
    let (tpe, random, ahead) = race(try space(), trials: 60)
    XCTAssertLessThan(tpe, 0.75 * random, "mean shortfall: TPE \(tpe), random \(random)")
    XCTAssertGreaterThanOrEqual(ahead, 8, "TPE ahead on \(ahead) of 12 seeds")
  }

  /// A proposal is a function of (seed, trial, history): another sampler of the same seed
  /// replaying the history proposes the same (what a restarted coordinator relies on),
  /// another seed does not.
  func testProposalsAreReproducibleFromTheHistory() throws {
    let space = try space()
    var history: [SearchTrial] = []
    let sampler = TPESampler(space: space, seed: 4)
    for index in 0..<20 {
      let configuration = sampler.propose(trial: index, history: history)!
      XCTAssertEqual(TPESampler(space: space, seed: 4).propose(trial: index, history: history), configuration)
      history.append(SearchTrial(configuration: configuration, score: index % 3 == 0 ? nil : objective(configuration)))
    }
    XCTAssertNotEqual(TPESampler(space: space, seed: 5).propose(trial: 20, history: history), sampler.propose(trial: 20, history: history))
  }

  /// Random draws stay inside their ranges and cover them: every integer and choice
  /// appears, and a log-uniform's median is near the geometric mean of its bounds.
  func testRandomDrawsCoverTheirDistributions() throws {
    let sampler = RandomSampler(space: try space(), seed: 1)
    let draws = (0..<2000).map { sampler.propose(trial: $0, history: [])! }
    var rates: [Double] = [], epochs = Set<Double>(), optimizers = Set<String>()
    for draw in draws {
      guard case .number(let rate) = draw[0], case .number(let dropout) = draw[1], case .number(let epoch) = draw[2],
        case .text(let optimizer) = draw[3]
      else { return XCTFail("\(draw)") }
      XCTAssert((1e-5...1).contains(rate) && (0...1).contains(dropout), "\(draw)")
      rates.append(rate)
      epochs.insert(epoch)
      optimizers.insert(optimizer)
    }
    XCTAssertEqual(epochs, Set((1...8).map(Double.init)))
    XCTAssertEqual(optimizers, ["sgd", "adamw", "lion", "rmsprop"])
    XCTAssertEqual(log10(rates.sorted()[1000]), -2.5, accuracy: 0.2)
  }

  /// A grid proposes every combination once, the first setting slowest, then nothing;
  /// a continuous range has no grid.
  func testTheGridEnumeratesEveryCombinationOnce() throws {
    let grid = try GridSampler(space: try SearchSpace([
      ("seed", .integer(low: 0, high: 2)), ("sampling", .choice([.text("shuffle"), .text("class-balanced")])),
    ]))
    XCTAssertEqual(grid.count, 6)
    let all = (0..<6).map { grid.propose(trial: $0, history: [])! }
    XCTAssertEqual(all[0], [.number(0), .text("shuffle")])
    XCTAssertEqual(all[1], [.number(0), .text("class-balanced")])
    XCTAssertEqual(all[5], [.number(2), .text("class-balanced")])
    XCTAssertEqual(Set(all.map { $0.map(\.description) }).count, 6)
    XCTAssertNil(grid.propose(trial: 6, history: []))
    XCTAssertThrowsError(try GridSampler(space: try space())) { XCTAssert("\($0)".contains("learning_rate: a grid needs discrete values"), "\($0)") }
  }

  func testBadSpacesAreRefusedNamingTheSetting() {
    XCTAssertThrowsError(try SearchSpace([("learning_rate", .logUniform(low: 0, high: 1))])) { XCTAssert("\($0)".contains("learning_rate: log-uniform needs 0 < low")) }
    XCTAssertThrowsError(try SearchSpace([("dropout", .uniform(low: 0.5, high: 0.1))])) { XCTAssert("\($0)".contains("dropout")) }
    XCTAssertThrowsError(try SearchSpace([("x", .choice([]))])) { XCTAssert("\($0)".contains("x: a choice needs")) }
    XCTAssertThrowsError(try SearchSpace([])) { XCTAssert("\($0)".contains("at least one setting")) }
  }
}

final class SuccessiveHalvingTests: XCTestCase {
  func testRungsAreGeometricBelowTheMaximum() throws {
    XCTAssertEqual(try SuccessiveHalving(minimumEpochs: 1, reduction: 3, maximumEpochs: 27).rungs, [1, 3, 9])
    XCTAssertEqual(try SuccessiveHalving(minimumEpochs: 2, reduction: 2, maximumEpochs: 15).rungs, [2, 4, 8])
    XCTAssertThrowsError(try SuccessiveHalving(reduction: 1, maximumEpochs: 9)) { XCTAssert("\($0)".contains("η must be at least 2")) }
    XCTAssertThrowsError(try SuccessiveHalving(minimumEpochs: 4, maximumEpochs: 3)) { XCTAssert("\($0)".contains("fewer than the first rung")) }
  }

  /// Twelve trials reach the first rung in turn, a quarter of them hopeless (scores near 0
  /// among scores near 1): every hopeless one that reports after the first few is stopped,
  /// the best is never stopped, and about 1/η go on.
  func testHopelessTrialsStopAtTheFirstRungAndTheBestGoesOn() throws {
    let halving = try SuccessiveHalving(minimumEpochs: 1, reduction: 3, maximumEpochs: 9)
    let scores = [0.80, 0.05, 0.82, 0.78, 0.03, 0.85, 0.79, 0.81, 0.04, 0.77, 0.83, 0.86]
    var reported: [Double] = []
    var continued: [Int] = []
    for (trial, score) in scores.enumerated() {
      if halving.continues(score: score, atEpoch: 1, earlier: reported) { continued.append(trial) }
      reported.append(score)
    }
    XCTAssert(continued.contains(0), "the first to reach a rung waits for no one")
    XCTAssert(continued.contains(11), "the best goes on")
    for hopeless in [1, 4, 8] { XCTAssertFalse(continued.contains(hopeless), "trial \(hopeless) should stop: \(continued)") }
    XCTAssertLessThanOrEqual(continued.count, 6, "about a third go on: \(continued)")
    XCTAssert(halving.continues(score: 0, atEpoch: 2, earlier: [1, 1, 1]), "epoch 2 is no rung")
  }
}

final class RungLedgerTests: XCTestCase {
  /// Trials on two folds: a trial is judged on the mean of its folds once both reported the
  /// rung, not on the first fold's score; its other fold is told to stop at its next report,
  /// whatever the epoch; a fold's repeated report (a retried attempt) changes nothing.
  func testATrialOnTwoFoldsIsJudgedOnItsMeanOnceBothReported() throws {
    var ledger = RungLedger(halving: try SuccessiveHalving(minimumEpochs: 1, reduction: 2, maximumEpochs: 4), foldsPerTrial: 2)
    // Trial 0 sets the bar at 0.8 (0.7 and 0.9): the first judged always goes on.
    XCTAssertNil(ledger.record(trial: 0, fold: 0, epoch: 1, score: 0.7))
    XCTAssertNil(ledger.record(trial: 0, fold: 1, epoch: 1, score: 0.9))
    // Trial 1's first fold alone (0.95) would beat it; its mean (0.6) does not.
    XCTAssertNil(ledger.record(trial: 1, fold: 0, epoch: 1, score: 0.95), "no verdict before every fold reported")
    XCTAssertNil(ledger.record(trial: 1, fold: 0, epoch: 1, score: 0.0), "a repeated report is not a second fold")
    let stop = try XCTUnwrap(ledger.record(trial: 1, fold: 1, epoch: 1, score: 0.25))
    XCTAssertEqual(stop.score, 0.6, accuracy: 1e-12)
    XCTAssertEqual(stop.epoch, 1)
    XCTAssertEqual(stop.kept, 1)
    XCTAssertEqual(stop.judged, 2)
    XCTAssertEqual(ledger.stop(of: 1), stop)
    // Fold 0 trained on meanwhile: it is stopped at its next report, not a rung.
    XCTAssertEqual(ledger.record(trial: 1, fold: 0, epoch: 2, score: 0.99), stop)
    // A trial whose mean is better goes on; epoch 3 is no rung.
    XCTAssertNil(ledger.record(trial: 2, fold: 1, epoch: 1, score: 0.85))
    XCTAssertNil(ledger.record(trial: 2, fold: 0, epoch: 1, score: 0.85))
    XCTAssertNil(ledger.record(trial: 2, fold: 0, epoch: 3, score: 0.1))
    XCTAssertNil(ledger.stop(of: 2))
  }

  /// The verdicts depend on the reports' order alone (a restarted coordinator replays its
  /// log), and a diverged trial's NaN ranks last rather than escaping the cut.
  func testReplayingTheReportsGivesTheSameVerdictsAndNaNRanksLast() throws {
    let halving = try SuccessiveHalving(minimumEpochs: 1, reduction: 3, maximumEpochs: 9)
    // Folds in a different order for each trial, scores spread over 0.5…0.9.
    var reports: [(trial: Int, fold: Int, epoch: Int, score: Double)] = []
    let orders: [[Int]] = [[2, 0, 1], [0, 1, 2], [1, 2, 0]]
    for trial in 0..<12 {
      for (position, fold) in orders[trial % 3].enumerated() {
        reports.append((trial, fold, 1, trial == 7 ? .nan : 0.5 + 0.4 * Double((trial * 7 + position * 3) % 11) / 10))
      }
    }
    func verdicts() -> [Int?] {
      var ledger = RungLedger(halving: halving, foldsPerTrial: 3)
      return reports.map { ledger.record(trial: $0.trial, fold: $0.fold, epoch: $0.epoch, score: $0.score)?.trial }
    }
    let first = verdicts()
    XCTAssertEqual(first, verdicts())
    XCTAssert(first.contains(7), "the NaN trial is stopped: \(first)")
  }
}
