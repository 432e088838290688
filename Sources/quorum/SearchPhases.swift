import Cluster
import Data
import Ensemble
import Experiment
import Foundation
import RunLayout
import Search
import Training
import Wire

/// A search on the coordinator: its trials proposed as the run goes (`SearchTrialSource`),
/// each proposal journalled with its settings (so a restarted coordinator keeps every trial
/// it proposed), and the best configurations chosen as the members once every trial is
/// done. The scores come from the stored trial logits.
extension ExperimentSetup {
  /// A trial's task ids, one per fold it trains on: "trial-7/fold0", ….
  static func trialTasks(_ index: Int, _ plan: SearchPlan) -> [String] {
    plan.folds.map { RunDirectory.task(variant: SearchPlan.trialName(index), fold: $0) }
  }

  /// A trial's task payloads: its settings over the defaults, once per fold.
  static func trialPayloads(
    _ index: Int, _ overrides: [SearchResults.Setting], _ plan: SearchPlan, text: String, file: String
  ) throws -> [String: String] {
    var payloads: [String: String] = [:]
    for fold in plan.folds {
      payloads[RunDirectory.task(variant: SearchPlan.trialName(index), fold: fold)] = try taskSettings(
        text: text, file: file, variant: SearchPlan.trialName(index), fold: fold, overrides)
    }
    return payloads
  }

  /// The settings a sampled configuration puts over a trial's defaults (with its epochs).
  static func trialOverrides(_ configuration: SearchConfiguration, _ plan: SearchPlan, file: String) throws -> [SearchResults.Setting] {
    try plan.overrides(configuration, trial: true).map { SearchResults.Setting(key: $0.key, value: try searchValue($0.value, file: file)) }
  }

  static func propose(_ sampler: SearchSampler, trial: Int, history: [SearchTrial], file: String) throws -> SearchConfiguration {
    guard let configuration = sampler.propose(trial: trial, history: history) else {
      throw ExperimentError(file: file, line: nil, "search: the sampler has no configuration left for trial \(trial)")
    }
    return configuration
  }

  static func taskSettings(text: String, file: String, variant: String, fold: Int, _ overrides: [SearchResults.Setting]) throws -> String {
    let settings = TaskSettings(experiment: text, file: file, variant: variant, fold: fold, overrides: overrides)
    return String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
  }

  static func searchValue(_ value: SettingValue, file: String) throws -> SearchValue {
    switch value.kind {
    case .number(let number): return .number(number)
    case .text(let text): return .text(text)
    case .flag(let flag): return .flag(flag)
    case .list: throw ExperimentError(file: file, line: value.line, "search: a sampled setting cannot be a list")
    }
  }

  /// The trials proposed so far, in the order they were: the journal's `proposed` events
  /// (one per fold; the first of each trial counts).
  static func trialProposals(runDirectory: String) throws -> [TrialProposal] {
    let path = RunDirectory(runDirectory).journal
    var seen: Set<Int> = []
    var proposals: [TrialProposal] = []
    for event in try Journal.read(path) where event.kind == .proposed {
      guard let text = event.proposal, let proposal = try? JSONDecoder().decode(TrialProposal.self, from: Data(text.utf8)) else {
        throw DataError(file: path, "the proposal of \(event.task) is not a search trial's")
      }
      if seen.insert(proposal.trial).inserted { proposals.append(proposal) }
    }
    return proposals
  }

  /// A proposal's configuration: its value of each of the space's settings.
  func configuration(of proposal: TrialProposal, _ plan: SearchPlan) throws -> SearchConfiguration {
    try plan.space.parameters.map { parameter in
      guard let setting = proposal.settings.first(where: { $0.key == parameter.name }) else {
        throw ExperimentError(
          file: experiment.file, line: nil,
          "search: trial \(proposal.trial) in the journal has no \(parameter.name); the space changed since it was proposed (start a new run directory)")
      }
      return setting.value
    }
  }

  /// Every trial proposed so far, by index, with its score (nil where it failed, runs or
  /// is not stored).
  func searchHistory() throws -> [SearchTrial] {
    guard let plan = experiment.search else { return [] }
    return try Self.trialProposals(runDirectory: experiment.runDirectory).sorted { $0.trial < $1.trial }.map { proposal in
      SearchTrial(configuration: try configuration(of: proposal, plan), score: try trialScore(proposal.trial, plan))
    }
  }

  /// A stored trial's score by the search's metric: the mean over its folds of the score
  /// on each fold's validation images (as scikit-learn's cross_val_score averages), nil
  /// unless every fold is stored.
  func trialScore(_ index: Int, _ plan: SearchPlan) throws -> Double? {
    var total = 0.0
    for fold in plan.folds {
      let path = RunDirectory(experiment.runDirectory).memberOutOfFold(variant: SearchPlan.trialName(index), fold: fold)
      guard FileManager.default.fileExists(atPath: path) else { return nil }
      let (shape, logits) = try NumPy.readFloat32(path)
      let rows = data.folds.split(fold).validation
      let classes = data.training.classes
      guard shape == [rows.count, classes] else {
        throw DataError(file: path, "has shape \(shape); fold \(fold) holds \(rows.count) examples of \(classes) classes")
      }
      let labels = rows.map { data.training.labels[$0] }
      let metrics = logits.withUnsafeBufferPointer { ClassificationMetrics.compute(logits: $0.baseAddress!, labels: labels, classes: classes) }
      let score = metrics.score(plan.metric)
      guard score.isFinite else { return nil }
      total += score
    }
    return total / Double(plan.folds.count)
  }

  /// Every trial done: the best `plan.best` configurations (ties to the earlier trial)
  /// become the members best-1, best-2, … (search.json, search.csv), each on every fold.
  func prepareSearchMembers() throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.search, let foldCount = experiment.foldCount else { return [:] }
    let history = try searchHistory()
    // A trial stopped by successive halving was scored on fewer epochs: it is no candidate.
    let ranked = history.indices.filter { history[$0].score != nil && rungs?.stopped($0) == nil }
      .sorted { (history[$0].score!, -$0) > (history[$1].score!, -$1) }
    guard ranked.count >= plan.best else {
      throw ExperimentError(
        file: experiment.file, line: nil,
        "search: \(ranked.count) of \(history.count) trials scored, fewer than the \(plan.best) members it should choose (see the failed trials)")
    }
    let chosen = ranked.prefix(plan.best).enumerated().map { rank, trial in
      SearchResults.Chosen(
        member: SearchPlan.memberName(rank + 1), trial: trial, score: history[trial].score!,
        settings: zip(plan.space.parameters, history[trial].configuration).map { SearchResults.Setting(key: $0.name, value: $1) })
    }
    try SearchResults(metric: plan.metric.spelling, chosen: chosen).write(runDirectory: experiment.runDirectory)
    try writeSearchTable(history, plan: plan, chosen: chosen)
    for member in chosen {
      print("search: \(member.member) is trial \(member.trial) (\(plan.metric.spelling) \(String(format: "%.4f", member.score))): "
        + member.settings.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
    let text = String(decoding: try FileBytes.read(experiment.file), as: UTF8.self)
    var payloads: [String: (settings: String, tensors: [WireTensor])] = [:]
    for member in chosen {
      for fold in 0..<foldCount {
        payloads[RunDirectory.task(variant: member.member, fold: fold)] = (
          try Self.taskSettings(text: text, file: experiment.file, variant: member.member, fold: fold, member.settings), []
        )
      }
    }
    return payloads
  }

  /// The report's search section: every trial, its fate and the member it became.
  func searchReport() throws -> SearchReport? {
    guard let plan = experiment.search else { return nil }
    let history = try searchHistory()
    let chosen = try SearchResults.read(runDirectory: experiment.runDirectory)?.chosen ?? []
    let trials = history.enumerated().map { index, trial in
      SearchReport.Trial(
        index: index, values: trial.configuration.map(\.description), score: trial.score,
        status: trial.score == nil ? "failed" : rungs?.stopped(index).map { "stopped at epoch \($0)" } ?? "scored",
        member: chosen.first { $0.trial == index }?.member)
    }
    let logScale = plan.space.parameters.map { parameter -> Bool in
      if case .logUniform = parameter.distribution { return true }
      return false
    }
    return SearchReport(metric: plan.metric.spelling, parameters: plan.space.parameters.map(\.name), logScale: logScale, trials: trials)
  }

  /// A CSV field, quoted where it must be (RFC 4180).
  static func csvField(_ text: String) -> String {
    text.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
  }

  /// search.csv: a row per trial given (its settings, its score, whether it was chosen);
  /// `indices` are the trials' numbers where they are not 0, 1, 2, ….
  func writeSearchTable(_ history: [SearchTrial], indices: [Int]? = nil, plan: SearchPlan, chosen: [SearchResults.Chosen]) throws {
    var csv = (["trial"] + plan.space.parameters.map(\.name) + [plan.metric.spelling, "status", "member"]).joined(separator: ",") + "\n"
    for (position, trial) in history.enumerated() {
      let index = indices?[position] ?? position
      let member = chosen.first { $0.trial == index }?.member ?? ""
      let score = trial.score.map { String(format: "%.6f", $0) } ?? ""
      let status = trial.score == nil ? "failed" : rungs?.stopped(index).map { "stopped at epoch \($0)" } ?? "scored"
      csv += ([String(index)] + trial.configuration.map { Self.csvField("\($0)") } + [score, status, member])
        .joined(separator: ",") + "\n"
    }
    try FileBytes.writeAtomically(Array(csv.utf8), to: RunDirectory(experiment.runDirectory).searchTable)
  }
}

/// What the journal keeps of a trial's proposal: its index and the settings it puts over
/// the training defaults (its sampled values and its epochs).
struct TrialProposal: Codable, Equatable {
  var trial: Int
  var settings: [SearchResults.Setting]
}

/// Proposes a search's trials on the coordinator as its workers free up (the coordinator's
/// task source). Asynchronous: a trial whenever a worker is free and fewer than `parallel`
/// run, from the trials finished by then. Batches: a batch once every earlier trial is
/// done, from the batches before it alone, so the same seed gives the same search whatever
/// the timing (and after a crash half-way through proposing a batch).
final class SearchTrialSource {
  let setup: ExperimentSetup
  let plan: SearchPlan
  private let sampler: SearchSampler
  private let text: String
  /// Trial index → its configuration, for every trial proposed (the journal's at the start).
  private var proposed: [Int: SearchConfiguration] = [:]
  /// The scores of finished trials (they do not change once finished).
  private var scores: [Int: Double?] = [:]

  init(setup: ExperimentSetup) throws {
    guard let plan = setup.experiment.search else { throw ExperimentError(file: setup.experiment.file, line: nil, "no search: section") }
    self.setup = setup
    self.plan = plan
    sampler = try plan.makeSampler()
    text = String(decoding: try FileBytes.read(setup.experiment.file), as: UTF8.self)
    for proposal in try ExperimentSetup.trialProposals(runDirectory: setup.experiment.runDirectory) {
      proposed[proposal.trial] = try setup.configuration(of: proposal, plan)
    }
  }

  /// The next trials, given the coordinator's unfinished tasks of the trials' phase.
  func next(unfinished: [String]) throws -> TaskProposal {
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
      let payloads = try ExperimentSetup.trialPayloads(index, overrides, plan, text: text, file: setup.experiment.file)
      for task in ExperimentSetup.trialTasks(index, plan) {
        tasks.append(ProposedTask(task: task, settings: payloads[task]!, proposal: proposal))
      }
    }
    let scored = history.compactMap(\.score)
    let best = scored.max().map { String(format: "%.4f", $0) } ?? "none"
    switch plan.schedule {
    case .asynchronous:
      print("search: trial \(first) of \(plan.trials) proposed from the \(history.count) finished; best \(plan.metric.spelling) so far \(best)")
    case .batches:
      let batch = plan.batches.firstIndex { $0.contains(first) }!
      print("search: batch \(batch + 1) of \(plan.batches.count): \(indices.count) trials; best \(plan.metric.spelling) so far \(best) "
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

/// A search's successive halving on the coordinator: the ledger of its rungs (Search's
/// RungLedger) fed with the trials' reports in the order they came. Every decision follows
/// from that order alone, so replaying the rung reports of the journal after a restart
/// rebuilds it.
final class SearchRungs: @unchecked Sendable {
  let plan: SearchPlan
  private let lock = NSLock()
  private var ledger: RungLedger

  init?(_ plan: SearchPlan) {
    guard let halving = plan.halving else { return nil }
    self.plan = plan
    ledger = RungLedger(halving: halving, foldsPerTrial: plan.folds.count)
  }

  /// Why `report`'s trial should stop after this epoch, or nil.
  func decide(_ report: ProgressReport) -> String? {
    guard let (trial, fold) = Self.trial(of: report.task, plan), let score = report.validationMetric else { return nil }
    lock.lock()
    defer { lock.unlock() }
    guard let stop = ledger.record(trial: trial, fold: fold, epoch: report.epoch, score: score) else { return nil }
    let mean = plan.folds.count == 1 ? "" : " (the mean of its \(plan.folds.count) folds)"
    return String(
      format: "successive halving: %@ %.4f%@ is not among the best %d of the %d trials at epoch %d",
      plan.metric.spelling, stop.score, mean, stop.kept, stop.judged, stop.epoch)
  }

  /// The epoch a trial was stopped after, if it was.
  func stopped(_ trial: Int) -> Int? {
    lock.lock()
    defer { lock.unlock() }
    return ledger.stop(of: trial)?.epoch
  }

  /// Whether the coordinator decides on `report` (a trial's score at a rung): it is
  /// journalled first.
  func isRungReport(_ report: ProgressReport) -> Bool {
    Self.trial(of: report.task, plan) != nil && report.validationMetric != nil && (plan.halving?.rungs.contains(report.epoch) ?? false)
  }

  /// Replays the rung reports of the run's journal (a restarted coordinator, a report made
  /// afterwards), sending nothing: the same decisions, in the same order.
  func replay(journal path: String) {
    // A journal that cannot be read is the coordinator's to report (it reads it next).
    for event in (try? Journal.read(path)) ?? [] where event.kind == .reported {
      if let report = event.progress { _ = decide(report) }
    }
  }

  /// The trial index and fold of a task id "trial-N/foldF" of one of the search's folds.
  static func trial(of task: String, _ plan: SearchPlan) -> (trial: Int, fold: Int)? {
    let parts = task.split(separator: "/")
    guard parts.count == 2, parts[0].hasPrefix("trial-"), parts[1].hasPrefix("fold"),
      let trial = Int(parts[0].dropFirst("trial-".count)), let fold = Int(parts[1].dropFirst("fold".count)), plan.folds.contains(fold)
    else { return nil }
    return (trial, fold)
  }
}
