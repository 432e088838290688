import Cluster
import Data
import Ensemble
import Experiment
import Files
import Foundation
import Report
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
  public static func trialTasks(_ index: Int, _ plan: SearchPlan) -> [String] {
    plan.folds.map { RunDirectory.task(variant: SearchPlan.trialName(index), fold: $0) }
  }

  /// A trial's task payloads: its settings over the defaults, once per fold.
  public static func trialPayloads(
    _ index: Int, _ overrides: [SearchResults.Setting], _ plan: SearchPlan, experiment: Experiment, training: ImageDataset
  ) throws -> [String: String] {
    var payloads: [String: String] = [:]
    let variant = plan.variant(SearchPlan.trialName(index), overrides: overrides.map { ($0.key, SearchPlan.settingValue($0.value)) })
    for fold in plan.folds {
      payloads[RunDirectory.task(variant: variant.name, fold: fold)] = try TaskSpecification(
        variant, role: .trial(fold: fold), experiment: experiment, training: training
      ).encoded()
    }
    return payloads
  }

  /// The settings a sampled configuration puts over a trial's defaults (with its epochs).
  public static func trialOverrides(_ configuration: SearchConfiguration, _ plan: SearchPlan, file: String) throws -> [SearchResults.Setting] {
    try plan.overrides(configuration, trial: true).map { SearchResults.Setting(key: $0.key, value: try searchValue($0.value, file: file)) }
  }

  public static func propose(_ sampler: SearchSampler, trial: Int, history: [SearchTrial], file: String) throws -> SearchConfiguration {
    guard let configuration = sampler.propose(trial: trial, history: history) else {
      throw ExperimentError(file: file, line: nil, "search: the sampler has no configuration left for trial \(trial)")
    }
    return configuration
  }

  public static func searchValue(_ value: SettingValue, file: String) throws -> SearchValue {
    switch value.kind {
    case .number(let number): return .number(number)
    case .text(let text): return .text(text)
    case .flag(let flag): return .flag(flag)
    case .list: throw ExperimentError(file: file, line: value.line, "search: a sampled setting cannot be a list")
    }
  }

  /// The trials proposed so far, in the order they were: the journal's `proposed` events
  /// (one per fold; the first of each trial counts).
  public static func trialProposals(runDirectory: String) throws -> [TrialProposal] {
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
  public func configuration(of proposal: TrialProposal, _ plan: SearchPlan) throws -> SearchConfiguration {
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
  public func searchHistory() throws -> [SearchTrial] {
    guard let plan = experiment.search else { return [] }
    return try Self.trialProposals(runDirectory: experiment.runDirectory).sorted { $0.trial < $1.trial }.map { proposal in
      SearchTrial(configuration: try configuration(of: proposal, plan), score: try trialScore(proposal.trial, plan))
    }
  }

  /// A stored trial's score by the search's metric: the mean over its folds of the score
  /// on each fold's validation images (as scikit-learn's cross_val_score averages), nil
  /// unless every fold is stored.
  public func trialScore(_ index: Int, _ plan: SearchPlan) throws -> Double? {
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
  public func prepareSearchMembers() throws -> [String: (settings: String, tensors: [WireTensor])] {
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
      log("search: \(member.member) is trial \(member.trial) (\(plan.metric.spelling) \(String(format: "%.4f", member.score))): "
        + member.settings.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
    var payloads: [String: (settings: String, tensors: [WireTensor])] = [:]
    for member in chosen {
      let variant = plan.variant(member.member, overrides: member.settings.map { ($0.key, SearchPlan.settingValue($0.value)) })
      for fold in 0..<foldCount {
        payloads[RunDirectory.task(variant: member.member, fold: fold)] = (
          try TaskSpecification(variant, role: .member(fold: fold), experiment: experiment, training: data.training).encoded(), []
        )
      }
    }
    return payloads
  }

  /// The report's search section: every trial, its fate and the member it became.
  public func searchReport() throws -> SearchReport? {
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
  public static func csvField(_ text: String) -> String {
    text.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
  }

  /// search.csv: a row per trial given (its settings, its score, whether it was chosen);
  /// `indices` are the trials' numbers where they are not 0, 1, 2, ….
  public func writeSearchTable(_ history: [SearchTrial], indices: [Int]? = nil, plan: SearchPlan, chosen: [SearchResults.Chosen]) throws {
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
public struct TrialProposal: Codable, Equatable {
  public var trial: Int
  public var settings: [SearchResults.Setting]
}
