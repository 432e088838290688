/// Where an experiment's data comes from and how it is folded: its `data:` section (each
/// key with its value as written) and its folds. All that a worker reading the paths needs
/// to load the data set the coordinator loaded, without the experiment file.
public struct DataSource: Codable, Equatable, Sendable {
  /// The experiment file, named in every error.
  public var file: String
  public var settings: [String: String]
  /// A fold assignment file (folds.file), else `foldCount` stratified folds by `foldSeed`.
  public var foldsFile: String?
  public var foldCount: Int?
  public var foldSeed: UInt64

  public init(file: String, settings: [String: String], foldsFile: String? = nil, foldCount: Int? = nil, foldSeed: UInt64 = 0) {
    self.file = file
    self.settings = settings
    self.foldsFile = foldsFile
    self.foldCount = foldCount
    self.foldSeed = foldSeed
  }

  public init(_ experiment: Experiment) {
    var settings: [String: String] = [:]
    // The first of a key counts, as the experiment's own lookups do.
    for (key, value) in experiment.data where settings[key] == nil { settings[key] = "\(value)" }
    self.init(
      file: experiment.file, settings: settings, foldsFile: experiment.foldsFile, foldCount: experiment.foldCount,
      foldSeed: experiment.foldSeed)
  }
}
