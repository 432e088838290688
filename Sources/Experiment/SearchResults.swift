import Data
import Files
import Foundation
import RunLayout
import Search

/// search.json in the run directory: the configurations a finished search chose, written
/// before the members train; the members' settings from then on (`applyingSearchResults`).
public struct SearchResults: Codable, Equatable {
  public struct Setting: Codable, Equatable {
    public var key: String
    public var value: SearchValue
    public init(key: String, value: SearchValue) {
      self.key = key
      self.value = value
    }
  }
  public struct Chosen: Codable, Equatable {
    /// "best-1", …: the member's variant name.
    public var member: String
    public var trial: Int
    public var score: Double
    public var settings: [Setting]
    public init(member: String, trial: Int, score: Double, settings: [Setting]) {
      self.member = member
      self.trial = trial
      self.score = score
      self.settings = settings
    }
  }
  /// The metric the trials were scored by.
  public var metric: String
  public var chosen: [Chosen]

  public init(metric: String, chosen: [Chosen]) {
    self.metric = metric
    self.chosen = chosen
  }

  /// The file's results, nil when there is none (the search is not done).
  public static func read(runDirectory: String) throws -> SearchResults? {
    let path = RunDirectory(runDirectory).searchResults
    guard FileManager.default.fileExists(atPath: path) else { return nil }
    do { return try JSONDecoder().decode(SearchResults.self, from: Data(try FileBytes.read(path))) } catch let error as DecodingError {
      throw ExperimentError(file: path, line: nil, "is not a search result Quorum wrote (\(error)); delete it to choose again from the trials")
    }
  }

  public func write(runDirectory: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try FileBytes.writeAtomically([UInt8](try encoder.encode(self)), to: RunDirectory(runDirectory).searchResults)
  }
}

extension Experiment {
  /// The experiment with its search's members as the search chose them (search.json in its
  /// run directory); as it is without a search or before one is done.
  public func applyingSearchResults() throws -> Experiment {
    guard let plan = search, let results = try SearchResults.read(runDirectory: runDirectory) else { return self }
    var experiment = self
    experiment.variants = try variants.map { variant in
      guard let chosen = results.chosen.first(where: { $0.member == variant.name }) else {
        throw ExperimentError(file: RunDirectory(runDirectory).searchResults, line: nil, "chooses no configuration for member \(variant.name)")
      }
      return plan.variant(variant.name, overrides: chosen.settings.map { ($0.key, SearchPlan.settingValue($0.value)) })
    }
    return experiment
  }
}
