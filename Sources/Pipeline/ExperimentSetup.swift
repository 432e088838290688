import Data
import Experiment
import Files
import Foundation
import RunLayout
import Search
import Training
import Wire

/// Everything a coordinator needs to schedule an experiment.
public struct ExperimentSetup {
  public let experiment: Experiment
  public let data: ExperimentData
  public let tasks: [String]
  /// Phases after the members': each Noisy Student round's tasks, then the distilled
  /// student and its teacher-less twin; a phase starts when the earlier ones are done.
  public let laterPhases: [[String]]
  public var laterTasks: [String] { laterPhases.flatMap { $0 } }
  /// What each later phase is (`laterPhases[i]` is phase i + 1).
  public let laterPhaseKinds: [PhaseKind]
  /// A search's successive halving (its rungs' reports), when it has one.
  public let rungs: SearchRungs?
  public let settings: [String: String]
  /// Where the setup says what its phases decide (a Noisy Student round's pseudo-labels, a
  /// search's proposals and chosen members): the command's output; nothing by default.
  public var log: (String) -> Void = { _ in }

  public enum PhaseKind: Equatable {
    /// The members a finished search chose, on every fold.
    case searchMembers
    case noisyRound(Int)
    case students
  }

  /// `runDirectory` overrides the file's (a run directory's own copy of its experiment).
  public init(file: String, runDirectory: String? = nil) throws {
    var experiment = try Experiment.read(file)
    if let runDirectory { experiment.runDirectory = runDirectory }
    // After a search, its chosen members (the report, `quorum ensemble`, a restart).
    experiment = try experiment.applyingSearchResults()
    self.experiment = experiment
    data = try ExperimentData.load(experiment)
    // A weighted recall with the wrong number of weights is refused before any task runs.
    do { try experiment.ensemble.objective.check(classes: data.training.classes) } catch let error as MetricError {
      throw ExperimentError(file: file, line: nil, "the ensemble's objective: \(error)")
    }
    // Each task resolved once, here: its variant's whole configuration for these images.
    let training = data.training
    func specification(_ variant: Experiment.Variant, _ role: TaskSpecification.Role) throws -> String {
      try TaskSpecification(variant, role: role, experiment: experiment, training: training).encoded()
    }
    func variant(_ name: String, in variants: [Experiment.Variant]) throws -> Experiment.Variant {
      guard let variant = variants.first(where: { $0.name == name }) else { throw ExperimentError(file: file, line: nil, "no variant \(name)") }
      return variant
    }
    var settings: [String: String] = [:]
    // A search's members are resolved when it has chosen them (`prepareSearchMembers`).
    for task in (experiment.search == nil ? experiment.tasks : []) + experiment.noisyTasks.flatMap({ $0 }) {
      settings[task.id] = try specification(try variant(task.variant, in: experiment.foldVariants), .member(fold: task.fold))
    }
    // Refits need nothing from the ensemble: they run beside the members.
    var firstTasks = experiment.tasks.map(\.id) + (experiment.refit?.taskIDs ?? [])
    for (task, name) in zip(experiment.refit?.taskIDs ?? [], experiment.refit?.variants ?? []) {
      settings[task] = try specification(try variant(name, in: experiment.variants), .refit)
    }
    var phases = experiment.noisyTasks.map { $0.map(\.id) }
    var kinds = phases.indices.map { PhaseKind.noisyRound($0 + 1) }
    if let plan = experiment.distill {
      phases.append(plan.taskIDs)
      kinds.append(.students)
      for (task, student) in zip(plan.taskIDs, [plan.student, plan.alone]) { settings[task] = try specification(student, .student) }
    }
    if let plan = experiment.search {
      // The trials proposed so far (the journal's: a restarted coordinator's), each on its
      // folds; the others are proposed as the run goes (`SearchTrialSource`); then the
      // chosen members.
      firstTasks = []
      for proposal in try Self.trialProposals(runDirectory: experiment.runDirectory) {
        let payloads = try Self.trialPayloads(proposal.trial, proposal.settings, plan, experiment: experiment, training: training)
        settings.merge(payloads) { $1 }
        firstTasks += Self.trialTasks(proposal.trial, plan)
      }
      phases = [experiment.tasks.map(\.id)]
      kinds = [.searchMembers]
    }
    tasks = firstTasks
    rungs = experiment.search.flatMap(SearchRungs.init)
    // The stops made so far (a restarted coordinator, a report made afterwards), replayed
    // from the rung reports in the journal.
    rungs?.replay(journal: RunDirectory(experiment.runDirectory).journal)
    laterPhases = phases
    laterPhaseKinds = kinds
    self.settings = settings
  }

  /// A later phase's payloads: the search's next trials or chosen members, pseudo-labels
  /// for a Noisy Student round, teacher targets for the students.
  public func preparePhase(_ phase: Int) throws -> [String: (settings: String, tensors: [WireTensor])] {
    switch laterPhaseKinds[phase - 1] {
    case .searchMembers: return try prepareSearchMembers()
    case .noisyRound(let round): return try prepareNoisyRound(round)
    case .students: return try prepareStudents()
    }
  }

  /// What starting a later phase's preparation is logged as.
  public func describePhase(_ phase: Int) -> String {
    switch laterPhaseKinds[phase - 1] {
    case .searchMembers: return "search: every trial is done: choosing the best configurations as members"
    case .noisyRound(let round): return "the tasks before Noisy Student round \(round) are done: pseudo-labelling the test images with their ensemble"
    case .students: return "every member is done: building the ensemble that teaches the student"
    }
  }

  /// The run directory's fixed files: the experiment as given and the fold assignment.
  public func prepareRunDirectory() throws {
    try Folders.create(experiment.runDirectory)
    let run = RunDirectory(experiment.runDirectory)
    try FileBytes.writeAtomically(try FileBytes.read(experiment.file), to: run.experiment)
    try data.folds.write(to: run.folds)
  }
}
