import Cluster
import Data
import Experiment
import Foundation
import Search

/// Proposes a search's trials on the coordinator as its workers free up (the coordinator's
/// task source). Asynchronous: a trial whenever a worker is free and fewer than `parallel`
/// run, from the trials finished by then. Batches: a batch once every earlier trial is
/// done, from the batches before it alone, so the same seed gives the same search whatever
/// the timing (and after a crash half-way through proposing a batch).
public final class SearchTrialSource {
  public let setup: ExperimentSetup
  public let plan: SearchPlan
  private let sampler: SearchSampler
  /// Trial index → its configuration, for every trial proposed (the journal's at the start).
  private var proposed: [Int: SearchConfiguration] = [:]
  /// The scores of finished trials (they do not change once finished).
  private var scores: [Int: Double?] = [:]

  public init(setup: ExperimentSetup) throws {
    guard let plan = setup.experiment.search else { throw ExperimentError(file: setup.experiment.file, line: nil, "no search: section") }
    self.setup = setup
    self.plan = plan
    sampler = try plan.makeSampler()
    for proposal in try ExperimentSetup.trialProposals(runDirectory: setup.experiment.runDirectory) {
      proposed[proposal.trial] = try setup.configuration(of: proposal, plan)
    }
  }

  /// The next trials, given the coordinator's unfinished tasks of the trials' phase.
  public func next(unfinished: [String]) throws -> TaskProposal {
    guard proposed.count < plan.trials else { return .exhausted }
    let running = Set(unfinished.compactMap { SearchRungs.trial(of: $0, plan)?.trial })
    let first = proposed.count
    let indices: [Int]
    let history: [SearchTrial]
    switch plan.schedule {
    case .asynchronous:
      if let parallel = plan.parallel, running.count >= parallel { return .wait }
      indices = [first]
      history = try finishedTrials(proposed.keys.filter { !running.contains($0) })
    case .batches:
      guard running.isEmpty, let batch = plan.batches.first(where: { $0.contains(first) }) else { return .wait }
      // A batch cut short by a crash is completed from the same history it started from.
      indices = Array(first...batch.last!)
      history = try finishedTrials(Array(0..<batch.first!))
    }
    var tasks: [ProposedTask] = []
    for index in indices {
      let configuration = try ExperimentSetup.propose(sampler, trial: index, history: history, file: setup.experiment.file)
      proposed[index] = configuration
      let overrides = try ExperimentSetup.trialOverrides(configuration, plan, file: setup.experiment.file)
      let proposal = String(decoding: try JSONEncoder().encode(TrialProposal(trial: index, settings: overrides)), as: UTF8.self)
      let payloads = try ExperimentSetup.trialPayloads(index, overrides, plan, experiment: setup.experiment, training: setup.data.training)
      for task in ExperimentSetup.trialTasks(index, plan) {
        tasks.append(ProposedTask(task: task, settings: payloads[task]!, proposal: proposal))
      }
    }
    let scored = history.compactMap(\.score)
    let best = scored.max().map { String(format: "%.4f", $0) } ?? "none"
    switch plan.schedule {
    case .asynchronous:
      setup.log("search: trial \(first) of \(plan.trials) proposed from the \(history.count) finished; best \(plan.metric.spelling) so far \(best)")
    case .batches:
      let batch = plan.batches.firstIndex { $0.contains(first) }!
      setup.log("search: batch \(batch + 1) of \(plan.batches.count): \(indices.count) trials; best \(plan.metric.spelling) so far \(best) "
        + "(\(scored.count) of \(history.count) trials scored)")
    }
    // The table of the trials finished so far (the ones this proposal learnt from).
    let finished = proposed.keys.filter { !running.contains($0) && !indices.contains($0) }.sorted()
    try setup.writeSearchTable(try finishedTrials(finished), indices: finished, plan: plan, chosen: [])
    return .tasks(tasks)
  }

  /// The given finished trials by index, each with its score (computed once).
  private func finishedTrials(_ indices: [Int]) throws -> [SearchTrial] {
    try indices.sorted().map { index in
      if scores[index] == nil { scores[index] = .some(try setup.trialScore(index, plan)) }
      return SearchTrial(configuration: proposed[index]!, score: scores[index]!)
    }
  }
}
