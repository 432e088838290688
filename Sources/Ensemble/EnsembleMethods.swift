import Data
import Foundation

/// What the experiment asks of the ensembling (its `ensemble:` section).
public struct EnsembleSettings: Codable, Equatable, Sendable {
  /// What Caruana and the choice of the submitted method optimise.
  public var objective: Objective = .balancedAccuracy
  public var caruanaIterations = 50
  public var caruanaInitialMembers = 1
  public var caruanaBags = 0
  public var stackingL2 = 1e-3
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

  public func apply(_ members: [Predictions]) -> Predictions {
    switch self {
    case .mixture(let weights, let temperature):
      let mixed = Predictions.mixture(members, weights: weights)
      return temperature.map { TemperatureScaling.apply(mixed, temperature: $0) } ?? mixed
    case .hardVote: return EnsembleMethods.hardVote(members)
    case .stacking(let stacker): return stacker.predict(members)
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
  public var stacker: LogisticStacker?
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
    let scores = outOfFold.map { settings.objective.score($0.metrics(labels: labels)) }
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

    var caruana = CaruanaSelection(
      objective: settings.objective, iterations: settings.caruanaIterations, initialMembers: settings.caruanaInitialMembers,
      bags: settings.caruanaBags)
    caruana.seed = 0
    results.append(weighted("Caruana selection (\(settings.objective.rawValue))") { caruana.fit($0, labels: $1) })
    results.append(weighted("NLL-optimal weights") { SimplexWeights().fit($0, labels: $1) })

    let l2 = settings.stackingL2
    let classes = outOfFold[0].classes
    func fitStacker(_ parts: [Predictions], _ y: [Int32]) -> LogisticStacker {
      var stacker = LogisticStacker(members: count, classes: classes, l2: l2)
      stacker.fit(parts, labels: y)
      return stacker
    }
    let stackedOOF = crossValidated(fitStacker) { $0.predict($1) }
    let stacker = fitStacker(outOfFold, labels)
    results.append(MethodResult(
      name: "stacking (logistic regression)", outOfFold: stackedOOF, test: tests.map { stacker.predict($0) }, stacker: stacker,
      combiner: .stacking(stacker)))

    // Temperature scaling of the soft vote: changes confidence (NLL), never the class.
    let soft = results[1]
    let scaledOOF = crossValidated({ parts, y in TemperatureScaling.fit(Predictions.mixture(parts, weights: equal), labels: y) }) {
      TemperatureScaling.apply(Predictions.mixture($1, weights: equal), temperature: $0)
    }
    let temperature = TemperatureScaling.fit(soft.outOfFold, labels: labels)
    results.append(MethodResult(
      name: "soft vote + temperature", outOfFold: scaledOOF, test: soft.test.map { TemperatureScaling.apply($0, temperature: temperature) },
      weights: equal, temperature: temperature, combiner: .mixture(weights: equal, temperature: temperature)))
    return results
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
