import Ensemble
import Files
import Foundation
import Data
import Tensor
import Training
import Yams
import RunLayout

/// An experiment: data, folds and a grid of training variants, expanded into tasks
/// (variant × fold). Read from YAML; every error names the file, key and line.
///
/// ```yaml
/// name: fmnist-lt
/// run_directory: runs/fmnist-lt      # default runs/NAME
/// device: cpu                        # cpu, auto, cuda[:N] or cuda-emulated
/// data:
///   train: /usr/share/datasets/fashion-mnist
///   layout: idx                      # idx, class-arrays, csv, class-folders
///   long_tail_ratio: 100
/// folds: {k: 5, seed: 0}             # or {file: folds.npy}
/// training: {epochs: 15, width: 1.0} # quorum train's settings, for every variant
/// grid:                              # each value a list; every combination is a variant
///   seed: [0, 1]
///   dropout: [0.2, 0.3]
/// ```
public struct Experiment {
  public struct Variant: Equatable {
    /// "seed-0_dropout-0.2": the grid values that make it, in grid order.
    public var name: String
    /// Every setting of the variant: the training defaults overridden by its grid values.
    public var settings: [(key: String, value: SettingValue)]

    public init(name: String, settings: [(key: String, value: SettingValue)]) {
      self.name = name
      self.settings = settings
    }

    public static func == (a: Variant, b: Variant) -> Bool {
      a.name == b.name && a.settings.map(\.key) == b.settings.map(\.key) && a.settings.map(\.value) == b.settings.map(\.value)
    }

    /// The training configuration of this variant for a model of the given input.
    public func configuration(_ base: TrainingConfiguration, file: String) throws -> TrainingConfiguration {
      var configuration = base
      do { try TrainingSettings.apply(settings, to: &configuration) } catch let mismatch as TrainingSettingMismatch {
        throw ExperimentError(file: file, line: mismatch.value.line, "\(mismatch)")
      }
      do { try configuration.validate() } catch {
        throw ExperimentError(file: file, line: nil, "variant \(name): \(error)")
      }
      return configuration
    }
  }

  public struct Task: Equatable {
    public var variant: String
    public var fold: Int
    /// "VARIANT/foldK": the task's id and its place in the run directory.
    public var id: String { RunDirectory.task(variant: variant, fold: fold) }
  }

  public var file: String
  public var name: String
  public var runDirectory: String
  /// Where the local workers of `quorum run` train (workers started by hand say their own).
  public var device: ComputeDevice
  /// How logits travel from workers: float32 (exact), float16 or bfloat16 (half the
  /// bytes; the scores move in the fourth decimal).
  public var logitsPrecision: String
  /// How the members are combined (the `ensemble:` section).
  public var ensemble: EnsembleSettings
  /// Noisy Student rounds after the members (the `noisy_student:` section).
  public var noisyStudent: NoisyStudentPlan?
  /// A student distilled from the ensemble after the members (the `distill:` section).
  public var distill: DistillPlan?
  /// Variants retrained on the whole training set (the `refit:` section).
  public var refit: RefitPlan?
  /// Data settings as given (train, layout, test, images, long_tail_ratio, …).
  public var data: [(key: String, value: SettingValue)]
  public var foldCount: Int?
  public var foldSeed: UInt64
  public var foldsFile: String?
  public var variants: [Variant]
  /// A hyper-parameter search before the members (the `search:` section): its best
  /// configurations are the members `best-1`, `best-2`, ….
  public var search: SearchPlan? = nil

  /// Each Noisy Student round's tasks, variant-major like the members'.
  public var noisyTasks: [[Task]] {
    guard let foldCount, let plan = noisyStudent else { return [] }
    return plan.variants.map { variant in (0..<foldCount).map { Task(variant: variant.name, fold: $0) } }
  }

  /// Every variant that is trained fold by fold: the members, then the Noisy Student rounds.
  public var foldVariants: [Variant] { variants + (noisyStudent?.variants ?? []) }

  /// Every task, variant-major.
  public var tasks: [Task] {
    guard let foldCount else { return [] }
    return variants.flatMap { variant in (0..<foldCount).map { Task(variant: variant.name, fold: $0) } }
  }

  /// The most variants a grid may make (each is k tasks).
  public static let maximumVariants = 10_000

  /// `text` with every character but ASCII letters, digits, "-", "_" and "." as "-".
  static func pathSafe(_ text: String) -> String {
    String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "-" })
  }

  static let topLevelKeys = ["name", "run_directory", "device", "logits_precision", "metric", "data", "folds", "training", "grid", "ensemble", "noisy_student", "distill", "refit", "search"]


  /// How workers get the data set. `served` (the default): the coordinator sends it over
  /// the workers' connection (`DataBundle`), so a worker needs no copy of the files.
  /// `shared`: every worker reads the paths itself (large data on a shared file system).
  public enum DataAccess: String, CaseIterable, Sendable { case served, shared }

  /// The data section's `data_access` (checked as the file is read).
  public var dataAccess: DataAccess {
    data.first { $0.key == "data_access" }.flatMap { DataAccess(rawValue: "\($0.value)") } ?? .served
  }

  public static func read(_ path: String) throws -> Experiment {
    let bytes: [UInt8]
    do { bytes = try FileBytes.read(path) } catch let error as DataError { throw ExperimentError(file: path, line: nil, error.problem) }
    guard let text = String(validating: bytes, as: UTF8.self) else {
      throw ExperimentError(file: path, line: nil, "is not UTF-8 text: is it the right file?")
    }
    return try parse(text, file: path)
  }

  public static func parse(_ text: String, file: String) throws -> Experiment {
    func fail(_ node: Node?, _ problem: String) -> ExperimentError { ExperimentError(file: file, line: node?.mark?.line, problem) }
    if text.utf8.count > DocumentSize.maximumBytes {
      throw ExperimentError(file: file, line: nil, "is \(text.utf8.count) bytes, more than an experiment file's \(DocumentSize.maximumBytes): is it the right file?")
    }
    let root: Node?
    do { root = try Yams.compose(yaml: text) } catch let error as YamlError {
      throw ExperimentError(file: file, line: nil, "not valid YAML: \(error)")
    }
    if let root, DocumentSize.exceeds(root, limit: DocumentSize.maximumNodes) {
      throw ExperimentError(
        file: file, line: nil,
        "holds more than \(DocumentSize.maximumNodes) values once its aliases (*name) are expanded: write the lists out, or use fewer aliases")
    }
    guard let root, case .mapping(let top) = root else { throw fail(root, "the experiment must be a mapping of keys (name, data, folds, …)") }
    var entries: [String: Node] = [:]
    for (key, value) in top {
      guard let name = key.string else { throw fail(key, "keys must be text") }
      guard topLevelKeys.contains(name) else {
        throw fail(key, "unknown key \"\(name)\" (expected \(topLevelKeys.joined(separator: ", ")))")
      }
      entries[name] = value
    }
    guard let nameNode = entries["name"], let name = nameNode.string, !name.isEmpty else {
      throw fail(entries["name"] ?? root, "\"name\" is required (text)")
    }
    // It names a folder under runs/: "..", "." or a hidden name would land elsewhere.
    guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }), !name.hasPrefix("."), name.count <= 100 else {
      throw fail(nameNode, "name \"\(name.prefix(100))\" may hold ASCII letters, digits, - _ . only, not start with a dot, and be at most 100 characters (it names the run directory)")
    }
    // A text key given as a list or mapping must not quietly become its default.
    for key in ["device", "logits_precision", "run_directory", "metric"] {
      if let node = entries[key], node.scalar == nil { throw fail(node, "\(key) must be text, not a list or mapping") }
    }
    let deviceName = entries["device"]?.string ?? "cpu"
    guard let device = ComputeDevice(deviceName) else {
      throw fail(entries["device"], "device must be \(ComputeDevice.spellings), got \(deviceName)")
    }

    let logitsPrecision = entries["logits_precision"]?.string ?? "float32"
    guard ["float32", "float16", "bfloat16"].contains(logitsPrecision) else {
      throw fail(entries["logits_precision"], "logits_precision must be float32, float16 or bfloat16, got \(logitsPrecision)")
    }

    // The competition's metric: the default of every member's select_by and of the
    // ensemble's objective (so of Caruana's selection and the submitted method).
    var metric: Metric?
    if let node = entries["metric"] {
      guard let text = node.string, let parsed = Metric(text) else {
        throw fail(node, "metric must be \(Metric.spellings), got \(node.string ?? "?")")
      }
      metric = parsed
    }

    // data
    guard let dataNode = entries["data"], case .mapping(let dataMapping) = dataNode else {
      throw fail(entries["data"] ?? root, "\"data\" is required: a mapping with at least \"train\"")
    }
    var data: [(key: String, value: SettingValue)] = []
    for (key, value) in dataMapping {
      guard let key = key.string, DataSource.keys.contains(key) else {
        throw fail(key, "unknown data key \"\(key.string ?? "?")\" (expected \(DataSource.keys.sorted().joined(separator: ", ")))")
      }
      data.append((key, try settingValue(value, file: file)))
    }
    guard data.contains(where: { $0.key == "train" }) else { throw fail(dataNode, "data needs \"train\": where the training data is") }
    if let access = data.first(where: { $0.key == "data_access" }), DataAccess(rawValue: "\(access.value)") == nil {
      throw ExperimentError(
        file: file, line: access.value.line,
        "data_access must be \(DataAccess.allCases.map(\.rawValue).joined(separator: " or ")), got \(access.value)")
    }

    // folds
    var foldCount: Int?
    var foldSeed: UInt64 = 0
    var foldsFile: String?
    if let foldsNode = entries["folds"] {
      guard case .mapping(let folds) = foldsNode else { throw fail(foldsNode, "folds must be a mapping: {k: 5, seed: 0} or {file: PATH}") }
      for (key, value) in folds {
        switch key.string {
        case "k":
          guard let k = value.int, k >= 2 else { throw fail(value, "folds.k must be a whole number ≥ 2") }
          foldCount = k
        case "seed":
          guard let seed = value.int, seed >= 0 else { throw fail(value, "folds.seed must be a whole number ≥ 0") }
          foldSeed = UInt64(seed)
        case "file":
          guard let path = value.string else { throw fail(value, "folds.file must be a path") }
          foldsFile = path
        default: throw fail(key, "unknown folds key \"\(key.string ?? "?")\" (expected k, seed, file)")
        }
      }
      if foldsFile != nil && foldCount != nil { throw fail(foldsNode, "folds: give k (and seed) or file, not both") }
      if let foldsFile {
        do { foldCount = try FoldAssignment.count(of: foldsFile) } catch {
          throw fail(foldsNode, "folds.file: \(error)")
        }
      }
    } else {
      foldCount = 5
    }

    // training defaults and the grid
    var defaults: [(key: String, value: SettingValue)] = []
    if let trainingNode = entries["training"] {
      guard case .mapping(let training) = trainingNode else { throw fail(trainingNode, "training must be a mapping of settings") }
      for (key, value) in training {
        let name = try settingKey(key, file: file)
        defaults.append((name, try settingValue(value, file: file)))
      }
    }
    if let metric, let node = entries["metric"], !defaults.contains(where: { $0.key == "select_by" }) {
      defaults.insert(("select_by", SettingValue(kind: .text(metric.spelling), line: node.mark?.line)), at: 0)
    }
    var grid: [(key: String, values: [SettingValue])] = []
    if let gridNode = entries["grid"] {
      guard case .mapping(let mapping) = gridNode else { throw fail(gridNode, "grid must be a mapping of settings to lists") }
      for (key, value) in mapping {
        let name = try settingKey(key, file: file)
        guard case .sequence(let sequence) = value, !sequence.isEmpty else {
          throw fail(value, "grid.\(name) must be a non-empty list of values")
        }
        grid.append((name, try sequence.map { try settingValue($0, file: file) }))
      }
    }
    // The product of the grid, first key slowest; bounded before it is built (YAML aliases
    // make a short file declare a huge grid).
    let size = grid.reduce(1) { size, entry in size.multipliedReportingOverflow(by: entry.values.count).overflow ? Int.max : size * entry.values.count }
    guard size <= Self.maximumVariants else {
      throw fail(entries["grid"], "the grid makes \(size == Int.max ? "more than \(Int.max)" : "\(size)") variants, at most \(Self.maximumVariants)")
    }
    var combinations: [[(key: String, value: SettingValue)]] = [[]]
    for (key, values) in grid {
      combinations = combinations.flatMap { prefix in values.map { prefix + [(key, $0)] } }
    }
    var variants = combinations.map { combination -> Variant in
      // "seed-0_dropout-0.2": readable, and safe as a directory name (a value's other
      // characters, "/" above all, become "-").
      let name = combination.isEmpty
        ? "default" : combination.map { "\($0.key.replacingOccurrences(of: "_", with: "-"))-\(Self.pathSafe("\($0.value)"))" }.joined(separator: "_")
      var settings = defaults.filter { d in !combination.contains { $0.key == d.key } }
      settings += combination
      return Variant(name: name, settings: settings)
    }
    // A search's members are its best configurations, known once its trials are done:
    // named here, their settings the defaults until then (`applyingSearchResults`).
    let search = try SearchPlan.parse(
      entries["search"], defaults: defaults, metric: metric ?? .balancedAccuracy, foldCount: foldCount ?? 1000, file: file)
    if let search {
      for other in ["grid", "noisy_student", "distill", "refit"] where entries[other] != nil {
        throw fail(entries[other], "search: and \(other): cannot be combined yet: the search's best configurations are the members")
      }
      variants = (1...search.best).map { Variant(name: SearchPlan.memberName($0), settings: defaults) }
    }
    var experiment = Experiment(
      file: file, name: name, runDirectory: entries["run_directory"]?.string ?? "runs/\(name)", device: device,
      logitsPrecision: logitsPrecision, ensemble: try EnsembleSection.parse(entries["ensemble"], metric: metric, file: file),
      noisyStudent: try NoisyStudentPlan.parse(entries["noisy_student"], defaults: defaults, file: file),
      distill: try DistillPlan.parse(entries["distill"], defaults: defaults, file: file),
      refit: try RefitPlan.parse(entries["refit"], variants: variants.map(\.name), file: file), data: data,
      foldCount: foldCount, foldSeed: foldSeed, foldsFile: foldsFile, variants: variants)
    experiment.search = search
    // User weights name members: the grid's variants and the Noisy Student rounds.
    if let weights = experiment.ensemble.userWeights {
      let members = experiment.foldVariants.map(\.name)
      for name in weights.keys.sorted() where !members.contains(name) {
        throw ExperimentError(file: file, line: nil, "ensemble weights name \"\(name)\", which is not a member (\(members.joined(separator: ", ")))")
      }
    }
    // Every variant's settings must make a valid configuration (types, ranges).
    for variant in variants + (experiment.distill.map { [$0.student] } ?? []) + (experiment.noisyStudent?.variants ?? []) {
      // The classes are the data's, unknown here: a list of class weights is checked against
      // them where the data loads (each task's specification), not against a default count.
      var base = TrainingConfiguration(model: .init())
      if let weights = variant.settings.last(where: { $0.key == "class_weights" }), case .list(let values) = weights.value.kind {
        base.model.classes = max(values.count, 2)
      }
      _ = try variant.configuration(base, file: file)
    }
    return experiment
  }

  /// `defaults` with the training settings of a section's mapping (`distill.training`,
  /// `noisy_student.training`) put over them.
  static func settings(
    _ defaults: [(key: String, value: SettingValue)], overriddenBy node: Node, section: String, file: String
  ) throws -> [(key: String, value: SettingValue)] {
    guard case .mapping(let training) = node else {
      throw ExperimentError(file: file, line: node.mark?.line, "\(section) must be a mapping of training settings")
    }
    var overrides: [(key: String, value: SettingValue)] = []
    for (key, value) in training { overrides.append((try settingKey(key, file: file), try settingValue(value, file: file))) }
    return defaults.filter { d in !overrides.contains { $0.key == d.key } } + overrides
  }

  static func settingKey(_ key: Node, file: String) throws -> String {
    guard let name = key.string, TrainingSettings.all[name] != nil else {
      let known = TrainingSettings.keys.joined(separator: ", ")
      throw ExperimentError(file: file, line: key.mark?.line, "unknown training setting \"\(key.string ?? "?")\" (known: \(known))")
    }
    return name
  }

  static func settingValue(_ node: Node, file: String) throws -> SettingValue {
    let line = node.mark?.line
    switch node {
    case .scalar(let scalar):
      if let flag = node.bool, ["true", "false"].contains(scalar.string.lowercased()) { return SettingValue(kind: .flag(flag), line: line) }
      if let number = node.float, scalar.style == .plain, Double(scalar.string) != nil || node.int != nil {
        return SettingValue(kind: .number(number), line: line)
      }
      return SettingValue(kind: .text(scalar.string), line: line)
    case .sequence(let sequence):
      return SettingValue(kind: .list(try sequence.map { try settingValue($0, file: file) }), line: line)
    default:
      throw ExperimentError(file: file, line: line, "expected a value or a list, found a mapping")
    }
  }
}
