import Ensemble
import Yams
import RunLayout

/// The experiment file's `distill:` section: after the members, a student trained on the
/// whole training set towards the submitted ensemble's out-of-fold probabilities (and, with
/// `unlabelled`, on the test images towards its test probabilities), and the same student
/// trained on the labels alone, for comparison.
///
///     distill:
///       temperature: 2          # softens the teacher
///       hard_label_weight: 0.5  # α in α·onehot + (1 − α)·teacher
///       unlabelled: true        # also learn from the (unlabelled) test images
///       training: {width: 0.5}  # the student's settings over the experiment's training
public struct DistillPlan: Equatable {
  public var distillation: Distillation
  public var unlabelled: Bool
  /// The distilled student and its teacher-less twin, with the same settings.
  public var student: Experiment.Variant
  public var alone: Experiment.Variant

  /// Their tasks, after every member's: "student/all", "student-alone/all".
  public var taskIDs: [String] { [RunDirectory.refitTask(variant: student.name), RunDirectory.refitTask(variant: alone.name)] }

  static let keys = ["temperature", "hard_label_weight", "unlabelled", "training"]

  static func parse(_ node: Node?, defaults: [(key: String, value: SettingValue)], file: String) throws -> DistillPlan? {
    guard let node else { return nil }
    guard case .mapping(let mapping) = node else {
      throw ExperimentError(file: file, line: node.mark?.line, "\"distill\" must be a mapping (\(keys.joined(separator: ", ")))")
    }
    var distillation = Distillation()
    var unlabelled = false
    var settings = defaults
    for (key, value) in mapping {
      let line = key.mark?.line
      guard let name = key.string, keys.contains(name) else {
        throw ExperimentError(file: file, line: line, "unknown distill setting \"\(key.string ?? "?")\" (known: \(keys.joined(separator: ", ")))")
      }
      switch name {
      case "temperature":
        guard let number = value.float, number.isFinite, number > 0 else { throw ExperimentError(file: file, line: line, "distill temperature must be a number > 0") }
        distillation.temperature = number
      case "hard_label_weight":
        guard let number = value.float, (0...1).contains(number) else {
          throw ExperimentError(file: file, line: line, "distill hard_label_weight must be a number in 0…1")
        }
        distillation.hardLabelWeight = number
      case "unlabelled":
        guard let flag = value.bool else { throw ExperimentError(file: file, line: line, "distill unlabelled must be true or false") }
        unlabelled = flag
      default:
        settings = try Experiment.settings(defaults, overriddenBy: value, section: "distill training", file: file)
      }
    }
    return DistillPlan(
      distillation: distillation, unlabelled: unlabelled, student: Experiment.Variant(name: "student", settings: settings),
      alone: Experiment.Variant(name: "student-alone", settings: settings))
  }
}
