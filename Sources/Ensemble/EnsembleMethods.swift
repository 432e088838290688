import Data
import Foundation
import Training

/// What the experiment asks of the ensembling (its `ensemble:` section).
public struct EnsembleSettings: Codable, Equatable, Sendable {
  /// What Caruana and the choice of the submitted method optimise.
  public var objective: Metric = .balancedAccuracy
  public var caruanaIterations = 50
  public var caruanaInitialMembers = 1
  public var caruanaBags = 0
  public var stackingL2 = 1e-3
  /// Hidden units of the dense meta-learner (0: no MLP stacking) and its L2 penalty.
  public var mlpHidden = 32
  public var mlpL2 = 1e-2
  /// The user's own member weights (the `weights:` mapping; a member left out weighs 0):
  /// a soft vote with these weights is scored beside the fitted methods.
  public var userWeights: [String: Double]?
  /// Write each class's probability into submission.csv beside the label.
  public var submissionProbabilities = false

  public init() {}
}

/// How a fitted method turns members' predictions into the ensemble's: what
/// `quorum predict` applies to new data (ensemble/submitted.json).
public enum Combiner: Codable, Equatable, Sendable {
  /// The weighted mean of the probabilities, then an optional temperature.
  case mixture(weights: [Double], temperature: Double?)
  case hardVote
  case stacking(LogisticStacker)
  case mlpStacking(MLPStacker)
  /// The weighted mean divided by the training classes' prior (renormalised): post-hoc
  /// logit adjustment (Menon et al., 2021), the Bayes-optimal rule for balanced accuracy.
  case priorCorrected(weights: [Double], logPrior: [Double])
  /// The weighted mean's expected class cut at fitted thresholds (ordinal labels, kappa).
  case ordinalThresholds(weights: [Double], thresholds: OrdinalThresholds)

  public func apply(_ members: [Predictions]) -> Predictions {
    switch self {
    case .mixture(let weights, let temperature):
      let mixed = Predictions.mixture(members, weights: weights)
      return temperature.map { TemperatureScaling.apply(mixed, temperature: $0) } ?? mixed
    case .hardVote: return EnsembleMethods.hardVote(members)
    case .stacking(let stacker): return stacker.predict(members)
    case .mlpStacking(let stacker): return stacker.predict(members)
    case .priorCorrected(let weights, let logPrior): return EnsembleMethods.priorCorrected(Predictions.mixture(members, weights: weights), logPrior: logPrior)
    case .ordinalThresholds(let weights, let thresholds): return thresholds.apply(Predictions.mixture(members, weights: weights))
    }
  }
}

/// One ensemble method's outcome: predictions for the training set scored honestly (each
/// fold predicted by a combiner fitted without that fold, so nothing is scored on data it
/// was fitted on), test predictions from the combiner fitted on all folds, and what it
/// learnt.
public struct MethodResult: Sendable {
  public var name: String
  public var outOfFold: Predictions
  public var test: Predictions?
  /// Member weights of the final combiner (nil for stacking and single members).
  public var weights: [Double]?
  /// The final combiner's temperature, where it has one.
  public var temperature: Double?
  /// The final combiner, fitted on all folds.
  public var combiner: Combiner
}

/// Builds every method from a library of members.
public struct EnsembleMethods {
  public let members: [Member]
  public let labels: [Int32]
  public let folds: FoldAssignment
  public let settings: EnsembleSettings

  public init(members: [Member], labels: [Int32], folds: FoldAssignment, settings: EnsembleSettings) {
    precondition(!members.isEmpty)
    self.members = members
    self.labels = labels
    self.folds = folds
    self.settings = settings
  }

  var outOfFold: [Predictions] { members.map(\.outOfFold) }
  var tests: [Predictions]? { members.allSatisfy { $0.test != nil } ? members.map { $0.test! } : nil }

  /// Fits `fit` on the other folds and applies it to each fold in turn: the honest
  /// out-of-fold predictions of a fitted combiner.
  func crossValidated<Model>(_ fit: ([Predictions], [Int32]) -> Model, _ apply: (Model, [Predictions]) -> Predictions) -> Predictions {
    var assembled = Predictions.mixture(outOfFold, weights: [Double](repeating: 1, count: members.count))
    for fold in 0..<folds.count {
      let (training, validation) = folds.split(fold)
      let model = fit(outOfFold.map { $0.rows(training) }, training.map { labels[$0] })
      assembled.setRows(validation, from: apply(model, outOfFold.map { $0.rows(validation) }))
    }
    return assembled
  }

  /// The example weights of the fitted methods' cross-entropy under the objective: every
  /// class counting equally for balanced accuracy (n / (classes · count of the example's
  /// class)), by the competition's class weights for a weighted recall; nil otherwise.
  func balancing(_ labels: [Int32]) -> [Double]? {
    settings.objective.exampleWeights(labels, classes: outOfFold[0].classes)
  }

  /// ", class-balanced" (or ", class-weighted") where the fits lean toward classes.
  var balancingNote: String {
    switch settings.objective {
    case .balancedAccuracy: return ", class-balanced"
    case .weightedRecall: return ", class-weighted"
    default: return ""
    }
  }

  /// log of each class's share of `labels` (an absent class counts as one example).
  static func logPrior(_ labels: [Int32], classes: Int) -> [Double] {
    var counts = [Double](repeating: 0, count: classes)
    for label in labels { counts[Int(label)] += 1 }
    let total = counts.reduce(0) { $0 + max($1, 1) }
    return counts.map { log(max($0, 1) / total) }
  }

  /// p_c / π_c, renormalised.
  static func priorCorrected(_ predictions: Predictions, logPrior: [Double]) -> Predictions {
    let classes = predictions.classes
    let logits = predictions.logProbabilities.enumerated().map { Float($0.element - logPrior[$0.offset % classes]) }
    return Predictions(logits: logits, classes: classes)
  }

  /// A weighted mixture method: cross-validated, then refitted on everything.
  func weighted(_ name: String, _ fit: ([Predictions], [Int32]) -> [Double]) -> MethodResult {
    let oof = crossValidated(fit) { weights, parts in Predictions.mixture(parts, weights: weights) }
    let weights = fit(outOfFold, labels)
    return MethodResult(
      name: name, outOfFold: oof, test: tests.map { Predictions.mixture($0, weights: weights) }, weights: weights,
      combiner: .mixture(weights: weights, temperature: nil))
  }

  /// Every method, in the order of the report: the best single member, votes, Caruana,
  /// NLL-optimal weights, stacking, and the soft vote with temperature scaling.
  public func run() -> [MethodResult] {
    var results: [MethodResult] = []
    let count = members.count
    // The best member by its own out-of-fold score.
    let scores = outOfFold.map { $0.metrics(labels: labels).score(settings.objective) }
    let best = scores.indices.max { scores[$0] < scores[$1] }!
    let corner = (0..<count).map { $0 == best ? 1.0 : 0 }
    results.append(MethodResult(
      name: "best member (\(members[best].name))", outOfFold: outOfFold[best], test: members[best].test,
      weights: corner, combiner: .mixture(weights: corner, temperature: nil)))
    guard count > 1 else { return results }

    let equal = [Double](repeating: 1 / Double(count), count: count)
    results.append(MethodResult(
      name: "soft vote", outOfFold: Predictions.mixture(outOfFold, weights: equal), test: tests.map { Predictions.mixture($0, weights: equal) },
      weights: equal, combiner: .mixture(weights: equal, temperature: nil)))
    results.append(MethodResult(
      name: "hard vote", outOfFold: Self.hardVote(outOfFold), test: tests.map(Self.hardVote), weights: equal, combiner: .hardVote))

    if let user = settings.userWeights {
      let weights = members.map { user[$0.name] ?? 0 }
      let total = weights.reduce(0, +)
      if total > 0 {
        let normalised = weights.map { $0 / total }
        results.append(MethodResult(
          name: "user-weighted vote", outOfFold: Predictions.mixture(outOfFold, weights: normalised),
          test: tests.map { Predictions.mixture($0, weights: normalised) }, weights: normalised,
          combiner: .mixture(weights: normalised, temperature: nil)))
      }
    }

    var caruana = CaruanaSelection(
      objective: settings.objective, iterations: settings.caruanaIterations, initialMembers: settings.caruanaInitialMembers,
      bags: settings.caruanaBags)
    caruana.seed = 0
    results.append(weighted("Caruana selection (\(settings.objective.spelling))") { caruana.fit($0, labels: $1) })
    results.append(weighted(balancingNote.isEmpty ? "NLL-optimal weights" : "NLL-optimal weights (\(balancingNote.dropFirst(2)))") {
      SimplexWeights().fit($0, labels: $1, exampleWeights: balancing($1))
    })

    let l2 = settings.stackingL2
    let classes = outOfFold[0].classes
    func fitStacker(_ parts: [Predictions], _ y: [Int32]) -> LogisticStacker {
      var stacker = LogisticStacker(members: count, classes: classes, l2: l2)
      stacker.fit(parts, labels: y, exampleWeights: balancing(y))
      return stacker
    }
    let stackedOOF = crossValidated(fitStacker) { $0.predict($1) }
    let stacker = fitStacker(outOfFold, labels)
    results.append(MethodResult(
      name: "stacking (logistic regression\(balancingNote))", outOfFold: stackedOOF, test: tests.map { stacker.predict($0) },
      combiner: .stacking(stacker)))
    if settings.mlpHidden > 0 {
      let (hidden, mlpL2) = (settings.mlpHidden, settings.mlpL2)
      func fitMLP(_ parts: [Predictions], _ y: [Int32]) -> MLPStacker {
        var stacker = MLPStacker(members: count, classes: classes, hidden: hidden, l2: mlpL2)
        stacker.fit(parts, labels: y, exampleWeights: balancing(y))
        return stacker
      }
      let mlpOOF = crossValidated(fitMLP) { $0.predict($1) }
      let mlp = fitMLP(outOfFold, labels)
      results.append(MethodResult(
        name: "stacking (MLP, \(hidden) hidden\(balancingNote))", outOfFold: mlpOOF,
        test: tests.map { mlp.predict($0) }, combiner: .mlpStacking(mlp)))
    }

    // Temperature scaling of the soft vote: changes confidence (NLL), never the class.
    let soft = results[1]
    let scaledOOF = crossValidated({ parts, y in TemperatureScaling.fit(Predictions.mixture(parts, weights: equal), labels: y) }) {
      TemperatureScaling.apply(Predictions.mixture($1, weights: equal), temperature: $0)
    }
    let temperature = TemperatureScaling.fit(soft.outOfFold, labels: labels)
    results.append(MethodResult(
      name: "soft vote + temperature", outOfFold: scaledOOF, test: soft.test.map { TemperatureScaling.apply($0, temperature: temperature) },
      weights: equal, temperature: temperature, combiner: .mixture(weights: equal, temperature: temperature)))
    // The soft vote divided by the training folds' class prior to a fitted power τ ∈ [0, 1]
    // (p_c / π_c^τ): for balanced accuracy on imbalanced data, the correction the members'
    // training may have lacked; τ = 0 where it does not help (members trained with
    // balanced softmax already have it).
    func fitPrior(_ parts: [Predictions], _ y: [Int32]) -> [Double] {
      let logPrior = Self.logPrior(y, classes: classes)
      let vote = Predictions.mixture(parts, weights: equal)
      var best = (score: -Double.infinity, tau: 0.0)
      for step in 0...20 {
        let tau = Double(step) / 20
        let score = Self.priorCorrected(vote, logPrior: logPrior.map { tau * $0 }).metrics(labels: y).score(settings.objective)
        if score > best.score + 1e-12 { best = (score, tau) }
      }
      return logPrior.map { best.tau * $0 }
    }
    let priorOOF = crossValidated(fitPrior) { Self.priorCorrected(Predictions.mixture($1, weights: equal), logPrior: $0) }
    let prior = fitPrior(outOfFold, labels)
    let tau = Self.logPrior(labels, classes: classes).first.map { $0 == 0 ? 0 : prior[0] / $0 } ?? 0
    results.append(MethodResult(
      name: String(format: "soft vote + prior correction (τ = %.2f)", tau), outOfFold: priorOOF,
      test: soft.test.map { Self.priorCorrected($0, logPrior: prior) }, weights: equal,
      combiner: .priorCorrected(weights: equal, logPrior: prior)))
    // Ordinal labels scored by kappa: the soft vote's expected class cut at thresholds
    // fitted on the other folds (the tuning kappa needs, as the prior is balanced
    // accuracy's).
    if settings.objective == .quadraticKappa && classes > 2 {
      let thresholdsOOF = crossValidated({ OrdinalThresholds.fit(Predictions.mixture($0, weights: equal), labels: $1) }) {
        $0.apply(Predictions.mixture($1, weights: equal))
      }
      let thresholds = OrdinalThresholds.fit(soft.outOfFold, labels: labels)
      results.append(MethodResult(
        name: "soft vote + kappa thresholds (" + thresholds.cuts.map { String(format: "%.2f", $0) }.joined(separator: ", ") + ")",
        outOfFold: thresholdsOOF, test: soft.test.map { thresholds.apply($0) }, weights: equal,
        combiner: .ordinalThresholds(weights: equal, thresholds: thresholds)))
    }
    return results
  }

  /// `method` with each member's test predictions from its model retrained on all the
  /// training data where there is one (the fold models' average where not): the same
  /// combiner, fitted on the out-of-fold predictions, so its out-of-fold score is the
  /// method's. Nil when no member was refit.
  public static func refitted(_ method: MethodResult, members: [Member]) -> MethodResult? {
    guard members.contains(where: { $0.refitTest != nil }) else { return nil }
    var tests: [Predictions] = []
    for member in members {
      guard let test = member.refitTest ?? member.test else { return nil }
      tests.append(test)
    }
    var result = method
    let refit = members.filter { $0.refitTest != nil }.count
    result.name = "\(method.name), refit on all data" + (refit < members.count ? " (\(refit) of \(members.count) members)" : "")
    result.test = method.combiner.apply(tests)
    return result
  }

  /// Majority of the members' predicted classes; ties, and the probabilities, from the
  /// soft vote's (a small share), so that the result is a proper distribution.
  static func hardVote(_ members: [Predictions]) -> Predictions {
    let soft = Predictions.mixture(members, weights: [Double](repeating: 1, count: members.count))
    let (rows, classes) = (soft.rows, soft.classes)
    var values = [Double](repeating: 0, count: rows * classes)
    for row in 0..<rows {
      var votes = [Double](repeating: 0, count: classes)
      for member in members { votes[member.predictedClass(row: row)] += 1 }
      for c in 0..<classes {
        values[row * classes + c] = log((votes[c] + 0.01 * exp(soft.logProbabilities[row * classes + c])) / (Double(members.count) + 0.01))
      }
    }
    return Predictions(rows: rows, classes: classes, logProbabilities: values)
  }

  /// Each member's own NLL-optimal temperature (for the record: members' calibration).
  public func memberTemperatures() -> [Double] { outOfFold.map { TemperatureScaling.fit($0, labels: labels) } }
}
