import Data
import Ensemble
import Experiment
import Foundation
import Report
import RunLayout

/// The ensemble of a run's stored tasks: every complete member's out-of-fold scores, the
/// ensemble methods fitted on them, their scores and the submitted one. Made from the
/// stored logits alone and writing nothing, so a phase's teacher (a Noisy Student round's
/// labeller, a student's targets) is this value; `RunReport` writes it out.
public struct RunEnsemble {
  /// The experiment with a search's members as it chose them (it may have chosen since
  /// the setup was made).
  public let experiment: Experiment
  public let members: [Member]
  /// Variants with a fold that failed or is missing (a Noisy Student round not run yet is
  /// not missing).
  public let incomplete: [String]
  public let memberScores: [MethodScores]
  /// The fitted methods, then the chosen one on the refitted members where `refit:` asks.
  public let results: [MethodResult]
  public let scores: [MethodScores]
  /// The submitted method's index in `results` (0 when there are no members).
  public let chosen: Int
  /// The members whose refits the submission uses, when it is the refitted combiner's.
  public let refitMembers: [String]?
  /// Each member's fitted temperature.
  public let memberTemperatures: [Double]
  public let testLabels: [Int32]?

  /// The submitted method: the teacher of a distilled student, the labeller of a Noisy
  /// Student round; nil without a complete member.
  public var submitted: MethodResult? { members.isEmpty ? nil : results[chosen] }

  public init(setup: ExperimentSetup) throws {
    let experiment = try setup.experiment.applyingSearchResults()
    self.experiment = experiment
    let training = setup.data.training
    var (members, incomplete) = try MemberLibrary.load(
      runDirectory: experiment.runDirectory, variants: experiment.foldVariants.map(\.name), folds: setup.data.folds,
      classes: training.classes)
    let rounds = Set(experiment.noisyStudent?.variants.map(\.name) ?? [])
    incomplete.removeAll { rounds.contains($0) }
    self.members = members
    self.incomplete = incomplete
    let test = setup.data.test
    testLabels = test?.isLabelled == true ? test?.labels : nil
    memberScores = MethodScores.of(members, labels: training.labels, testLabels: testLabels)
    guard !members.isEmpty else {
      (results, scores, chosen, refitMembers, memberTemperatures) = ([], [], 0, nil, [])
      return
    }
    let methods = EnsembleMethods(members: members, labels: training.labels, folds: setup.data.folds, settings: experiment.ensemble)
    var results = methods.run()
    var scores = MethodScores.of(results, labels: training.labels, testLabels: testLabels)
    var chosen = MethodScores.best(scores, objective: experiment.ensemble.objective)
    // The chosen combiner on the members retrained on all data (refit:), submitted if asked.
    var refitMembers: [String]?
    if let plan = experiment.refit, let refitted = EnsembleMethods.refitted(results[chosen], members: members) {
      results.append(refitted)
      scores += MethodScores.of([refitted], labels: training.labels, testLabels: testLabels)
      if plan.submit {
        chosen = results.count - 1
        refitMembers = members.filter { $0.refitTest != nil }.map(\.name)
      }
    }
    self.results = results
    self.scores = scores
    self.chosen = chosen
    self.refitMembers = refitMembers
    memberTemperatures = methods.memberTemperatures()
  }
}
