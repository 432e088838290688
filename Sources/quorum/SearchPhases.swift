import Data
import Ensemble
import Experiment
import Foundation
import RunLayout
import Search
import Training
import Wire

/// A search's phases on the coordinator: each batch of trials proposed from the scores of
/// the batches before it, then the best configurations chosen as the members. Everything is
/// recomputed from the stored trial logits (the samplers are pure functions of the seed, the
/// trial and the history), so a restarted coordinator proposes and chooses exactly what it
/// would have.
extension ExperimentSetup {
  /// A trial's task ids, one per fold it trains on: "trial-7/fold0", ….
  static func trialTasks(_ index: Int, _ plan: SearchPlan) -> [String] {
    plan.folds.map { RunDirectory.task(variant: SearchPlan.trialName(index), fold: $0) }
  }

  /// A trial's task payloads: its configuration over the defaults, once per fold.
  static func trialPayloads(
    _ index: Int, _ configuration: SearchConfiguration, _ plan: SearchPlan, text: String, file: String
  ) throws -> [String: String] {
    var payloads: [String: String] = [:]
    for fold in plan.folds {
      payloads[RunDirectory.task(variant: SearchPlan.trialName(index), fold: fold)] = try taskSettings(
        text: text, file: file, variant: SearchPlan.trialName(index), fold: fold, plan.overrides(configuration, trial: true))
    }
    return payloads
  }

  static func propose(_ sampler: SearchSampler, trial: Int, history: [SearchTrial], file: String) throws -> SearchConfiguration {
    guard let configuration = sampler.propose(trial: trial, history: history) else {
      throw ExperimentError(file: file, line: nil, "search: the sampler has no configuration left for trial \(trial)")
    }
    return configuration
  }

  static func taskSettings(
    text: String, file: String, variant: String, fold: Int, _ overrides: [(key: String, value: SettingValue)]
  ) throws -> String {
    let settings = TaskSettings(
      experiment: text, file: file, variant: variant, fold: fold,
      overrides: try overrides.map { SearchResults.Setting(key: $0.key, value: try Self.searchValue($0.value, file: file)) })
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

  /// The trials of the first `batches` batches, in order: each configuration as the sampler
  /// proposed it, each score from the trial's stored out-of-fold logits (nil where it failed
  /// or is not stored).
  func searchHistory(batches count: Int) throws -> [SearchTrial] {
    guard let plan = experiment.search else { return [] }
    let sampler = try plan.makeSampler()
    var history: [SearchTrial] = []
    for batch in plan.batches.prefix(count) {
      let proposed = try batch.map { try Self.propose(sampler, trial: $0, history: history, file: experiment.file) }
      for (index, configuration) in zip(batch, proposed) {
        history.append(SearchTrial(configuration: configuration, score: try trialScore(index, plan)))
      }
    }
    return history
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

  /// Batch `batch`'s trials, proposed from the earlier batches (search.csv rewritten).
  func prepareSearchBatch(_ batch: Int) throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.search else { return [:] }
    let history = try searchHistory(batches: batch)
    try writeSearchTable(history, plan: plan, chosen: [])
    let text = String(decoding: try FileBytes.read(experiment.file), as: UTF8.self)
    let sampler = try plan.makeSampler()
    var payloads: [String: (settings: String, tensors: [WireTensor])] = [:]
    for index in plan.batches[batch] {
      let configuration = try Self.propose(sampler, trial: index, history: history, file: experiment.file)
      for (task, settings) in try Self.trialPayloads(index, configuration, plan, text: text, file: experiment.file) {
        payloads[task] = (settings, [])
      }
    }
    let scored = history.compactMap(\.score)
    print("search: batch \(batch + 1) of \(plan.batches.count): \(plan.batches[batch].count) trials; best \(plan.metric.spelling) so far "
      + (scored.max().map { String(format: "%.4f", $0) } ?? "none") + " (\(scored.count) of \(history.count) trials scored)")
    return payloads
  }

  /// Every trial done: the best `plan.best` configurations (ties to the earlier trial)
  /// become the members best-1, best-2, … (search.json, search.csv), each on every fold.
  func prepareSearchMembers() throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.search, let foldCount = experiment.foldCount else { return [:] }
    let history = try searchHistory(batches: plan.batches.count)
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
      let overrides = member.settings.map { ($0.key, SearchPlan.settingValue($0.value)) }
      for fold in 0..<foldCount {
        payloads[RunDirectory.task(variant: member.member, fold: fold)] = (
          try Self.taskSettings(text: text, file: experiment.file, variant: member.member, fold: fold, overrides), []
        )
      }
    }
    return payloads
  }

  /// The report's search section: every trial, its fate and the member it became.
  func searchReport() throws -> SearchReport? {
    guard let plan = experiment.search else { return nil }
    let history = try searchHistory(batches: plan.batches.count)
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

  /// search.csv: a row per trial so far (its settings, its score, whether it was chosen).
  func writeSearchTable(_ history: [SearchTrial], plan: SearchPlan, chosen: [SearchResults.Chosen]) throws {
    var csv = (["trial"] + plan.space.parameters.map(\.name) + [plan.metric.spelling, "status", "member"]).joined(separator: ",") + "\n"
    for (index, trial) in history.enumerated() {
      let member = chosen.first { $0.trial == index }?.member ?? ""
      let score = trial.score.map { String(format: "%.6f", $0) } ?? ""
      let status = trial.score == nil ? "failed" : rungs?.stopped(index).map { "stopped at epoch \($0)" } ?? "scored"
      csv += ([String(index)] + trial.configuration.map { Self.csvField("\($0)") } + [score, status, member])
        .joined(separator: ",") + "\n"
    }
    try FileBytes.writeAtomically(Array(csv.utf8), to: RunDirectory(experiment.runDirectory).searchTable)
  }
}

/// A search's successive halving on the coordinator: the ledger of its rungs (Search's
/// RungLedger) fed with the trials' reports in the order they came. Every decision follows
/// from that order alone, so replaying the run's progress.jsonl after a restart rebuilds it.
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

  /// Replays the run's progress.jsonl (a restarted coordinator), sending nothing.
  func replay(progressLog path: String) {
    guard let data = FileManager.default.contents(atPath: path) else { return }
    let decoder = JSONDecoder()
    for line in data.split(separator: UInt8(ascii: "\n")) {
      // A torn last line of a crash is skipped.
      if let report = try? decoder.decode(ProgressReport.self, from: Data(line)) { _ = decide(report) }
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
