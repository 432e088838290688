import Search
import Training
import Yams

/// The experiment file's `search:` section: trials of sampled training settings, each
/// trained on one fold as a task, in batches that run at once; the best configurations
/// then become the experiment's members, trained on every fold and ensembled.
///
///     search:
///       sampler: tpe            # grid, random or tpe
///       trials: 12
///       schedule: asynchronous  # a trial proposed whenever a worker is free (or batches)
///       parallel: 3             # trials running at once at most (batches: a batch's size)
///       epochs: 3               # each trial's (the members train the training: epochs)
///       folds: 1                # each trial trains on folds 0…folds−1 (or fold: F, one)
///       best: 2                 # configurations kept as members best-1, best-2
///       seed: 0
///       halving: {min_epochs: 1, reduction: 3}   # stop hopeless trials (ASHA); optional
///       space:
///         learning_rate: {log_uniform: [0.01, 0.3]}
///         dropout: {uniform: [0, 0.5]}
///         width: {choice: [0.5, 1.0]}
///         batch_size: {integer: [32, 128]}
///
/// Trials are scored by the experiment's `metric:` (balanced accuracy without one) on each
/// of their folds' validation images, averaged over the folds.
public struct SearchPlan {
  public enum SamplerKind: String, CaseIterable { case grid, random, tpe }
  /// When trials are proposed. `asynchronous`: whenever a worker is free, from the trials
  /// finished by then (no worker waits; a TPE search then depends on the order trials
  /// finish in). `batches`: `parallel` at a time, each batch from the batches before it,
  /// once they are done (the same search for the same seed, whatever the timing).
  public enum Schedule: String, CaseIterable { case asynchronous, batches }

  public var sampler: SamplerKind
  public var space: SearchSpace
  public var trials: Int
  public var schedule: Schedule
  /// Asynchronous: the most trials running at once (nil: as many as workers take).
  /// Batches: a batch's size (default 4).
  public var parallel: Int?
  public var epochs: Int?
  /// The folds each trial trains on (a task each), in order.
  public var folds: [Int]
  public var best: Int
  public var seed: UInt64
  public var metric: Metric
  /// Successive halving of the trials (their rungs at min_epochs · reductionᵏ); nil: every
  /// trial runs all its epochs.
  public var halving: SuccessiveHalving?
  /// The settings every trial starts from: the `training:` section's.
  public var defaults: [(key: String, value: SettingValue)]

  static let keys = ["sampler", "trials", "schedule", "parallel", "epochs", "fold", "folds", "best", "seed", "halving", "space"]
  static let distributions = ["uniform", "log_uniform", "integer", "choice"]
  public static let maximumTrials = 10_000

  /// The sampler the plan names.
  public func makeSampler() throws -> SearchSampler {
    switch sampler {
    case .grid: return try GridSampler(space: space)
    case .random: return RandomSampler(space: space, seed: seed)
    case .tpe: return TPESampler(space: space, seed: seed)
    }
  }

  /// "fold 0" or "folds 0, 1, 2": where the trials train, for the terminal.
  public var foldsDescription: String {
    (folds.count == 1 ? "fold " : "folds ") + folds.map(String.init).joined(separator: ", ")
  }

  /// Trial `index`'s variant name ("trial-7").
  public static func trialName(_ index: Int) -> String { "trial-\(index)" }
  /// The k-th best configuration's member name ("best-1").
  public static func memberName(_ rank: Int) -> String { "best-\(rank)" }

  /// The trials' indices in their batches: `parallel` (default 4) at a time.
  public var batches: [[Int]] {
    let size = parallel ?? 4
    return stride(from: 0, to: trials, by: size).map { Array($0..<min($0 + size, trials)) }
  }

  /// "asynchronous, up to 3 at once" or "4 batches of up to 4", for the terminal.
  public var scheduleDescription: String {
    switch schedule {
    case .asynchronous: return "asynchronous" + (parallel.map { ", up to \($0) at once" } ?? "")
    case .batches: return "\(batches.count) batches of up to \(parallel ?? 4)"
    }
  }

  /// The settings a configuration puts over the defaults (a trial's: with its `epochs`).
  public func overrides(_ configuration: SearchConfiguration, trial: Bool) -> [(key: String, value: SettingValue)] {
    var settings: [(key: String, value: SettingValue)] = zip(space.parameters, configuration).map { ($0.name, Self.settingValue($1)) }
    if trial, let epochs, !settings.contains(where: { $0.key == "epochs" }) {
      settings.append(("epochs", SettingValue(kind: .number(Double(epochs)), line: nil)))
    }
    return settings
  }

  /// A variant of the defaults with `overrides` put over them.
  public func variant(_ name: String, overrides: [(key: String, value: SettingValue)]) -> Experiment.Variant {
    Experiment.Variant(name: name, settings: defaults.filter { d in !overrides.contains { $0.key == d.key } } + overrides)
  }

  public static func settingValue(_ value: SearchValue) -> SettingValue {
    switch value {
    case .number(let number): return SettingValue(kind: .number(number), line: nil)
    case .text(let text): return SettingValue(kind: .text(text), line: nil)
    case .flag(let flag): return SettingValue(kind: .flag(flag), line: nil)
    }
  }

  static func parse(
    _ node: Node?, defaults: [(key: String, value: SettingValue)], metric: Metric, foldCount: Int, file: String
  ) throws -> SearchPlan? {
    guard let node else { return nil }
    func fail(_ at: Node?, _ problem: String) -> ExperimentError { ExperimentError(file: file, line: at?.mark?.line ?? node.mark?.line, problem) }
    guard case .mapping(let mapping) = node else { throw fail(node, "search must be a mapping (\(keys.joined(separator: ", ")))") }
    func integer(_ value: Node, _ name: String, _ range: ClosedRange<Int>) throws -> Int {
      guard let number = value.int, range.contains(number) else { throw fail(value, "search.\(name) must be a whole number in \(range.lowerBound)…\(range.upperBound)") }
      return number
    }
    var sampler = SamplerKind.tpe, schedule = Schedule.asynchronous, trials: Int?, parallel: Int?, epochs: Int?, folds = [0], best = 1, seed: UInt64 = 0
    var foldNode: Node?
    var space: [(name: String, distribution: SearchDistribution)] = []
    var spaceNode: Node?
    var halvingNode: Node?
    for (key, value) in mapping {
      switch key.string {
      case "sampler":
        guard let name = value.string, let kind = SamplerKind(rawValue: name) else {
          throw fail(value, "search.sampler must be one of \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        sampler = kind
      case "trials": trials = try integer(value, "trials", 1...maximumTrials)
      case "schedule":
        guard let name = value.string, let kind = Schedule(rawValue: name) else {
          throw fail(value, "search.schedule must be one of \(Schedule.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        schedule = kind
      case "parallel": parallel = try integer(value, "parallel", 1...1000)
      case "epochs": epochs = try integer(value, "epochs", 1...TrainingConfiguration.maximumEpochs)
      case "fold", "folds":
        guard foldNode == nil else { throw fail(value, "search takes fold: (one fold) or folds: (how many), not both") }
        foldNode = value
        if key.string == "fold" {
          folds = [try integer(value, "fold", 0...max(foldCount - 1, 0))]
        } else {
          folds = Array(0..<(try integer(value, "folds", 1...max(foldCount, 1))))
        }
      case "best": best = try integer(value, "best", 1...100)
      case "seed": seed = UInt64(try integer(value, "seed", 0...Int.max))
      case "halving": halvingNode = value
      case "space":
        spaceNode = value
        guard case .mapping(let settings) = value, !settings.isEmpty else {
          throw fail(value, "search.space must map training settings to distributions (\(distributions.joined(separator: ", ")))")
        }
        for (name, distribution) in settings {
          let setting = try Experiment.settingKey(name, file: file)
          space.append((setting, try parseDistribution(distribution, setting: setting, file: file)))
        }
      default:
        throw fail(key, "unknown search setting \"\(key.string ?? "?")\" (known: \(keys.joined(separator: ", ")))")
      }
    }
    guard spaceNode != nil else { throw fail(node, "search needs a space: the training settings to vary") }
    let searchSpace: SearchSpace
    do { searchSpace = try SearchSpace(space) } catch let error as SearchError { throw fail(spaceNode, "search.space: \(error)") }
    var plan = SearchPlan(
      sampler: sampler, space: searchSpace, trials: trials ?? 0, schedule: schedule, parallel: parallel, epochs: epochs, folds: folds, best: best,
      seed: seed, metric: metric, halving: nil, defaults: defaults)
    if let halvingNode {
      guard case .mapping(let settings) = halvingNode else { throw fail(halvingNode, "search.halving must be a mapping (min_epochs, reduction)") }
      guard !space.contains(where: { $0.name == "epochs" }) else {
        throw fail(halvingNode, "search.halving needs every trial to run the same epochs: take epochs out of the space")
      }
      var minimum = 1, reduction = 3
      for (key, value) in settings {
        switch key.string {
        case "min_epochs": minimum = try integer(value, "halving.min_epochs", 1...TrainingConfiguration.maximumEpochs)
        case "reduction": reduction = try integer(value, "halving.reduction", 2...100)
        default: throw fail(key, "unknown search.halving setting \"\(key.string ?? "?")\" (known: min_epochs, reduction)")
        }
      }
      // The trials' epochs: the search's, else the training defaults', else the default 15.
      var base = TrainingConfiguration(model: .init())
      if let given = defaults.first(where: { $0.key == "epochs" }) { try? TrainingSettings.apply([given], to: &base) }
      do {
        plan.halving = try SuccessiveHalving(minimumEpochs: minimum, reduction: reduction, maximumEpochs: epochs ?? base.epochs)
      } catch let error as SearchError { throw fail(halvingNode, "search.halving: \(error)") }
    }
    if sampler == .grid {
      let grid: GridSampler
      do { grid = try GridSampler(space: searchSpace) } catch let error as SearchError { throw fail(spaceNode, "search.space: \(error)") }
      plan.trials = min(trials ?? grid.count, grid.count)
    } else if trials == nil {
      throw fail(node, "search needs trials: how many configurations to try")
    }
    guard plan.best <= plan.trials else { throw fail(node, "search.best (\(plan.best)) is more than its \(plan.trials) trials") }
    return plan
  }

  /// `{uniform: [a, b]}`, `{log_uniform: [a, b]}`, `{integer: [a, b]}` or `{choice: [...]}`,
  /// each bound or choice checked against the setting (a width of "wide" is refused here,
  /// with its line, not in a trial).
  static func parseDistribution(_ node: Node, setting: String, file: String) throws -> SearchDistribution {
    func fail(_ problem: String) -> ExperimentError { ExperimentError(file: file, line: node.mark?.line, "search.space.\(setting): \(problem)") }
    guard case .mapping(let mapping) = node, mapping.count == 1, let entry = mapping.first, let kind = entry.key.string,
      distributions.contains(kind)
    else { throw fail("must be one of {uniform: [low, high]}, {log_uniform: [low, high]}, {integer: [low, high]}, {choice: [values]}") }
    guard case .sequence(let items) = entry.value, !items.isEmpty else { throw fail("\(kind) needs a list") }
    let values = try items.map { try Experiment.settingValue($0, file: file) }
    func searchValue(_ value: SettingValue) throws -> SearchValue {
      switch value.kind {
      case .number(let number): return .number(number)
      case .text(let text): return .text(text)
      case .flag(let flag): return .flag(flag)
      case .list: throw fail("a value may not be a list")
      }
    }
    let distribution: SearchDistribution
    if kind == "choice" {
      distribution = .choice(try values.map(searchValue))
    } else {
      guard values.count == 2, case .number(let low) = values[0].kind, case .number(let high) = values[1].kind else {
        throw fail("\(kind) needs [low, high], two numbers")
      }
      switch kind {
      case "uniform": distribution = .uniform(low: low, high: high)
      case "log_uniform": distribution = .logUniform(low: low, high: high)
      default:
        guard low == low.rounded(), high == high.rounded(), abs(low) < 1e15, abs(high) < 1e15 else { throw fail("integer needs whole bounds") }
        distribution = .integer(low: Int(low), high: Int(high))
      }
    }
    do { try distribution.validate(setting) } catch let error as SearchError { throw ExperimentError(file: file, line: node.mark?.line, "search.space.\(error)") }
    // Every extreme the distribution can give must be a valid value of the setting.
    let extremes: [SettingValue]
    switch distribution {
    case .choice(let choices): extremes = choices.map(settingValue)
    default: extremes = values
    }
    for value in extremes {
      var configuration = TrainingConfiguration(model: .init())
      do { try TrainingSettings.apply([(setting, value)], to: &configuration) } catch let mismatch as TrainingSettingMismatch {
        throw fail("\(value) is not a value of \(setting), which must be \(mismatch.expected)")
      }
    }
    return distribution
  }
}
