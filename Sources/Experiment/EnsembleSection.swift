import Ensemble
import Training
import Yams

/// The experiment file's `ensemble:` section: how the members are combined.
///
///     ensemble:
///       objective: balanced_accuracy     # a metric (as metric:); default: metric:, else balanced_accuracy
///       caruana_iterations: 50
///       caruana_initial_members: 1
///       caruana_bags: 0                  # > 0: bagged selection
///       stacking_l2: 0.001
///       mlp_hidden: 32                   # the dense meta-learner's width (0: none)
///       mlp_l2: 0.01
///       weights: {seed-0: 2, seed-1: 1}  # a user-weighted vote (members left out weigh 0)
///       submission_probabilities: false
enum EnsembleSection {
  static let keys = [
    "objective", "caruana_iterations", "caruana_initial_members", "caruana_bags", "stacking_l2", "mlp_hidden", "mlp_l2",
    "weights", "submission_probabilities",
  ]

  /// `metric` (the experiment's `metric:`) is the objective unless the section names one.
  static func parse(_ node: Node?, metric: Metric?, file: String) throws -> EnsembleSettings {
    var settings = EnsembleSettings()
    if let metric { settings.objective = metric }
    guard let node else { return settings }
    guard case .mapping(let mapping) = node else {
      throw ExperimentError(file: file, line: node.mark?.line, "\"ensemble\" must be a mapping (\(keys.joined(separator: ", ")))")
    }
    for (key, value) in mapping {
      let line = key.mark?.line
      guard let name = key.string, keys.contains(name) else {
        throw ExperimentError(file: file, line: line, "unknown ensemble setting \"\(key.string ?? "?")\" (known: \(keys.joined(separator: ", ")))")
      }
      func integer(_ range: ClosedRange<Int>) throws -> Int {
        guard let number = value.int, range.contains(number) else {
          throw ExperimentError(file: file, line: line, "ensemble \(name) must be a whole number in \(range.lowerBound)…\(range.upperBound)")
        }
        return number
      }
      switch name {
      case "objective":
        guard let text = value.string, let objective = Metric(text) else {
          throw ExperimentError(file: file, line: line, "ensemble objective must be \(Metric.spellings)")
        }
        settings.objective = objective
      case "caruana_iterations": settings.caruanaIterations = try integer(1...10_000)
      case "caruana_initial_members": settings.caruanaInitialMembers = try integer(1...1_000)
      case "caruana_bags": settings.caruanaBags = try integer(0...1_000)
      case "stacking_l2", "mlp_l2":
        guard let number = value.float, number.isFinite, number >= 0 else { throw ExperimentError(file: file, line: line, "ensemble \(name) must be a number ≥ 0") }
        if name == "mlp_l2" { settings.mlpL2 = number } else { settings.stackingL2 = number }
      case "mlp_hidden": settings.mlpHidden = try integer(0...4_096)
      case "weights":
        guard case .mapping(let pairs) = value else {
          throw ExperimentError(file: file, line: line, "ensemble weights must be a mapping of variant names to weights ≥ 0")
        }
        var weights: [String: Double] = [:]
        for (name, weight) in pairs {
          guard let variant = name.string, let number = weight.float, number.isFinite, number >= 0 else {
            throw ExperimentError(file: file, line: name.mark?.line ?? line, "ensemble weights: \"\(name.string ?? "?")\" needs a weight ≥ 0")
          }
          weights[variant] = number
        }
        guard weights.values.contains(where: { $0 > 0 }) else {
          throw ExperimentError(file: file, line: line, "ensemble weights must give some member a weight > 0")
        }
        settings.userWeights = weights
      default:
        guard let flag = value.bool else { throw ExperimentError(file: file, line: line, "ensemble \(name) must be true or false") }
        settings.submissionProbabilities = flag
      }
    }
    return settings
  }
}
