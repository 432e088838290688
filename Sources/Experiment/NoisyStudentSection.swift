import Yams

/// The experiment file's `noisy_student:` section (Xie et al., 2020): rounds of students
/// trained, fold by fold like the members, on their training folds plus the test images
/// pseudo-labelled by the current ensemble, with noise (dropout, stochastic depth,
/// augmentation: the section's training settings); each round's students join the library
/// that labels the next round and makes the final ensemble.
///
///     noisy_student:
///       rounds: 1
///       confidence: 0.8        # keep pseudo-labels the ensemble gives at least this probability
///       per_class: 0           # pseudo-labels per class (0: the mean kept count); the most
///                              # confident first, duplicated where a class has fewer
///       training: {dropout: 0.5, stochastic_depth: 0.2}
public struct NoisyStudentPlan: Equatable {
  public var rounds: Int
  public var confidence: Double
  public var perClass: Int
  /// One variant per round: "noisy-1", "noisy-2", …
  public var variants: [Experiment.Variant]

  static let keys = ["rounds", "confidence", "per_class", "training"]

  static func parse(_ node: Node?, defaults: [(key: String, value: SettingValue)], file: String) throws -> NoisyStudentPlan? {
    guard let node else { return nil }
    guard case .mapping(let mapping) = node else {
      throw ExperimentError(file: file, line: node.mark?.line, "\"noisy_student\" must be a mapping (\(keys.joined(separator: ", ")))")
    }
    var rounds = 1
    var confidence = 0.8
    var perClass = 0
    var settings = defaults
    for (key, value) in mapping {
      let line = key.mark?.line
      guard let name = key.string, keys.contains(name) else {
        throw ExperimentError(file: file, line: line, "unknown noisy_student setting \"\(key.string ?? "?")\" (known: \(keys.joined(separator: ", ")))")
      }
      switch name {
      case "rounds":
        guard let number = value.int, (1...10).contains(number) else { throw ExperimentError(file: file, line: line, "noisy_student rounds must be 1…10") }
        rounds = number
      case "confidence":
        guard let number = value.float, (0...1).contains(number) else {
          throw ExperimentError(file: file, line: line, "noisy_student confidence must be a number in 0…1")
        }
        confidence = number
      case "per_class":
        guard let number = value.int, number >= 0 else { throw ExperimentError(file: file, line: line, "noisy_student per_class must be a whole number ≥ 0") }
        perClass = number
      default:
        settings = try Experiment.settings(defaults, overriddenBy: value, section: "noisy_student training", file: file)
      }
    }
    return NoisyStudentPlan(
      rounds: rounds, confidence: confidence, perClass: perClass,
      variants: (1...rounds).map { Experiment.Variant(name: "noisy-\($0)", settings: settings) })
  }
}
