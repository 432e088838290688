import Data
import Ensemble
import Files
import Foundation
import Training
import RunLayout

/// What `quorum predict` needs to apply the submitted method to new data.
public struct SubmittedEnsemble: Codable, Equatable, Sendable {
  public var method: String
  /// The members, in the order the combiner expects them.
  public var members: [String]
  public var combiner: Combiner
  /// The members whose model retrained on all the training data replaces their fold
  /// models (absent: none).
  public var refit: [String]?

  public init(method: String, members: [String], combiner: Combiner, refit: [String]? = nil) {
    self.method = method
    self.members = members
    self.combiner = combiner
    self.refit = refit
  }

  public static func read(runDirectory: String) throws -> SubmittedEnsemble {
    let path = RunDirectory(runDirectory).submittedEnsemble
    do { return try JSONDecoder().decode(SubmittedEnsemble.self, from: Data(try FileBytes.read(path))) } catch let error as DataError {
      throw error
    } catch {
      throw DataError(file: path, "is not a submitted ensemble (\(error)): run `quorum report` again")
    }
  }
}

/// Writes what the ensembling produced into the run directory:
/// - scores.csv: every method's out-of-fold and test scores;
/// - ensemble/weights.json: each method's member weights and temperatures;
///   ensemble/stacker.json and mlp-stacker.json: the stacking meta-learners' parameters;
/// - submission.csv: id,label (and each class's probability if asked) of the method with
///   the best out-of-fold objective.
public enum EnsembleOutputs {
  /// `memberScores` follow the methods in scores.csv.
  public static func write(
    _ results: [MethodResult], scores: [MethodScores], memberScores: [MethodScores] = [], chosen: Int, members: [String],
    classNames: [String], testIDs: [String]?,
    settings: EnsembleSettings, memberTemperatures: [Double], refit: [String]? = nil, runDirectory: String
  ) throws {
    // scores.csv
    // The objective's own columns come last, named by its spelling (oof_quadratic_kappa,
    // oof_f_beta:2), oriented as the metric is (the NLL is not negated there).
    let objective = settings.objective
    var csv = "method,oof_accuracy,oof_balanced_accuracy,oof_macro_f1,oof_nll,oof_lowest_recall,test_accuracy,test_balanced_accuracy,test_macro_f1,test_nll,test_lowest_recall,"
      + csvField("oof_" + objective.spelling) + "," + csvField("test_" + objective.spelling) + "\n"
    func fields(_ m: ClassificationMetrics?) -> String {
      guard let m else { return ",,,," }
      return String(format: "%.6f,%.6f,%.6f,%.6f,%.6f", m.accuracy, m.balancedAccuracy, m.macroF1, m.negativeLogLikelihood, m.lowestRecall)
    }
    func value(_ m: ClassificationMetrics?) -> String { m.map { String(format: "%.6f", objective.value($0)) } ?? "" }
    for score in scores + memberScores {
      csv += "\(csvField(score.name)),\(fields(score.outOfFold)),\(fields(score.test)),\(value(score.outOfFold)),\(value(score.test))\n"
    }
    try FileBytes.writeAtomically(Array(csv.utf8), to: RunDirectory(runDirectory).scores)

    // ensemble/
    var methods: [[String: Any]] = []
    for result in results {
      var entry: [String: Any] = ["method": result.name]
      if let weights = result.weights { entry["weights"] = Dictionary(uniqueKeysWithValues: zip(members, weights)) }
      if let temperature = result.temperature { entry["temperature"] = temperature }
      methods.append(entry)
    }
    let record: [String: Any] = [
      "members": members, "member_temperatures": Dictionary(uniqueKeysWithValues: zip(members, memberTemperatures)),
      "methods": methods, "submitted": results[chosen].name, "objective": settings.objective.spelling,
    ]
    try FileBytes.writeAtomically(
      [UInt8](try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys])), to: RunDirectory(runDirectory).ensembleFile("weights.json"))
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    for result in results {
      switch result.combiner {
      case .stacking(let stacker): try FileBytes.writeAtomically([UInt8](try encoder.encode(stacker)), to: RunDirectory(runDirectory).ensembleFile("stacker.json"))
      case .mlpStacking(let stacker): try FileBytes.writeAtomically([UInt8](try encoder.encode(stacker)), to: RunDirectory(runDirectory).ensembleFile("mlp-stacker.json"))
      default: break
      }
    }
    try FileBytes.writeAtomically(
      [UInt8](try encoder.encode(SubmittedEnsemble(method: results[chosen].name, members: members, combiner: results[chosen].combiner, refit: refit))),
      to: RunDirectory(runDirectory).submittedEnsemble)

    // submission.csv
    guard let test = results[chosen].test else { return }
    var submission = "id,label" + (settings.submissionProbabilities ? classNames.map { "," + csvField($0) }.joined() : "") + "\n"
    for row in 0..<test.rows {
      let id = testIDs?[row] ?? String(row)
      submission += "\(csvField(id)),\(csvField(classNames[test.predictedClass(row: row)]))"
      if settings.submissionProbabilities {
        for c in 0..<test.classes { submission += String(format: ",%.6f", exp(test.logProbabilities[row * test.classes + c])) }
      }
      submission += "\n"
    }
    try FileBytes.writeAtomically(Array(submission.utf8), to: RunDirectory(runDirectory).submission)
  }

  /// A CSV field, quoted when it holds a comma, a quote or a line break.
  static func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return text }
    return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }

  /// The methods' scores as a markdown table (what `quorum run` prints).
  /// A metric other than balanced accuracy and NLL (which every table shows) gets the
  /// first columns, out of fold and on the test set.
  public static func table(_ scores: [MethodScores], chosen: Int, objective: Metric = .balancedAccuracy) -> String {
    let headline = objective == .balancedAccuracy || objective == .negativeLogLikelihood ? nil : objective
    var lines = [
      "| method |" + (headline.map { " OOF \($0.spelling) | test \($0.spelling) |" } ?? "")
        + " OOF balanced accuracy | OOF lowest recall | OOF NLL | test balanced accuracy | test lowest recall | test NLL |",
      "| --- |" + (headline == nil ? "" : " ---: | ---: |") + " ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (index, score) in scores.enumerated() {
      let test = score.test.map { String(format: "%.4f | %.3f | %.4f", $0.balancedAccuracy, $0.lowestRecall, $0.negativeLogLikelihood) } ?? "— | — | —"
      let first = headline.map { metric in
        String(format: " %.4f | %@ |", metric.value(score.outOfFold), score.test.map { String(format: "%.4f", metric.value($0)) } ?? "—")
      } ?? ""
      lines.append(String(
        format: "| %@%@ |%@ %.4f | %.3f | %.4f | %@ |", score.name, index == chosen ? " (submitted)" : "", first, score.outOfFold.balancedAccuracy,
        score.outOfFold.lowestRecall, score.outOfFold.negativeLogLikelihood, test))
    }
    return lines.joined(separator: "\n")
  }
}
