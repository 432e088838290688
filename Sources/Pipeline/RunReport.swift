import Data
import Ensemble
import Experiment
import Files
import Foundation
import Report
import RunLayout

/// The end of a run: every member's out-of-fold scores, then the ensembles built from them
/// (`RunEnsemble`), written to the run directory: ensemble/, scores.csv, submission.csv and
/// report.html.
public enum RunReport {
  /// Writes the run's ensemble outputs and report; returns the report's text and the
  /// submitted method.
  @discardableResult
  public static func combine(setup: ExperimentSetup) throws -> (text: String, submitted: MethodResult?) {
    let ensemble = try RunEnsemble(setup: setup)
    let experiment = ensemble.experiment
    let (members, results, scores, chosen) = (ensemble.members, ensemble.results, ensemble.scores, ensemble.chosen)
    let training = setup.data.training
    let classes = training.classes
    let classNames = training.classNames ?? (0..<classes).map(String.init)
    var lines = [
      "| member | OOF accuracy | OOF balanced accuracy | OOF macro-F1 | OOF lowest recall | test balanced accuracy |",
      "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (member, score) in zip(members, ensemble.memberScores) {
      let m = score.outOfFold
      lines.append(String(
        format: "| %@ | %.4f | %.4f | %.4f | %.3f | %@ |", member.name, m.accuracy, m.balancedAccuracy, m.macroF1, m.lowestRecall,
        score.test.map { String(format: "%.4f", $0.balancedAccuracy) } ?? "—"))
    }
    for name in ensemble.incomplete { lines.append("| \(name) | incomplete (a fold failed) | | | | |") }
    guard !members.isEmpty else { return (lines.joined(separator: "\n"), nil) }

    try EnsembleOutputs.write(
      results, scores: scores, memberScores: ensemble.memberScores, chosen: chosen, members: members.map(\.name),
      classNames: classNames, testIDs: setup.data.test?.ids, settings: experiment.ensemble,
      memberTemperatures: ensemble.memberTemperatures, refit: ensemble.refitMembers, runDirectory: experiment.runDirectory)
    var page = ReportPage(
      experiment: experiment.name, version: Release.version, commandLine: CommandLine.arguments.joined(separator: " "),
      experimentText: String(decoding: (try? FileBytes.read(experiment.file)) ?? [], as: UTF8.self),
      classNames: classNames, training: training, members: members, results: results,
      scores: scores, chosen: chosen, memberTemperatures: ensemble.memberTemperatures,
      epochs: ReportPage.epochs(runDirectory: experiment.runDirectory))
    // Grad-CAM of the mistakes: from the member the submitted method leans on most (the
    // best member where it has no weights), each example by its fold's model.
    let weights = results[chosen].weights ?? results[0].weights ?? []
    let leading = members[weights.indices.max { weights[$0] < weights[$1] } ?? 0].name
    page.objective = experiment.ensemble.objective
    page.search = try setup.searchReport()
    let explainer = experiment.foldVariants.first { $0.name == leading }.flatMap {
      try? FoldModelExplainer(runDirectory: experiment.runDirectory, variant: $0, training: training, folds: setup.data.folds, file: experiment.file)
    }
    let explained = explainer.map { explainer in page.explained(by: "\(leading)'s fold models") { explainer.heatMap(row: $0, classIndex: $1) } } ?? page
    try FileBytes.writeAtomically(Array(try explained.html().utf8), to: RunDirectory(experiment.runDirectory).report)
    lines += ["", "Ensembles (fitted methods scored by cross-validation over the folds; \(experiment.ensemble.objective.spelling) picks the submission):", ""]
    lines.append(EnsembleOutputs.table(scores, chosen: chosen, objective: experiment.ensemble.objective))
    lines += studentLines(setup: setup, testLabels: ensemble.testLabels)
    return (lines.joined(separator: "\n"), ensemble.submitted)
  }

  /// The students' test scores, where they are stored (they have no out-of-fold scores:
  /// each was trained on the whole training set).
  public static func studentLines(setup: ExperimentSetup, testLabels: [Int32]?) -> [String] {
    guard let plan = setup.experiment.distill, let testLabels else { return [] }
    var lines = ["", "Students (trained on the whole training set; test scores):", "", "| student | test balanced accuracy | test lowest recall | test NLL |", "| --- | ---: | ---: | ---: |"]
    for (variant, label) in [(plan.student.name, "distilled from the submitted ensemble"), (plan.alone.name, "the same student on the labels alone")] {
      let path = RunDirectory(setup.experiment.runDirectory).refitTest(variant: variant)
      guard let (shape, values) = try? NumPy.readFloat32(path), shape.count == 2 else {
        lines.append("| \(variant) (\(label)) | not trained | | |")
        continue
      }
      let m = Predictions(logits: values, classes: shape[1]).metrics(labels: testLabels)
      lines.append(String(format: "| %@ (%@) | %.4f | %.3f | %.4f |", variant, label, m.balancedAccuracy, m.lowestRecall, m.negativeLogLikelihood))
    }
    return lines
  }
}
