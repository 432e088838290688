import Yams
import RunLayout

/// The experiment file's `refit:` section: after cross-validation has chosen how to
/// combine the members, each (chosen) variant trained once more on the whole training set,
/// as extra tasks `VARIANT/all` beside the members'. Their test predictions take the place
/// of the fold models' average in the submitted ensemble (the combiner fitted on the
/// out-of-fold predictions is kept: a refit model has no out-of-fold predictions).
///
///     refit: true                       # every variant, submitted
///     refit:
///       variants: [seed-0, seed-1]      # or all
///       submit: true                    # false: scored beside the fold models only
public struct RefitPlan: Equatable {
  public var variants: [String]
  public var submit: Bool

  public init(variants: [String], submit: Bool) {
    self.variants = variants
    self.submit = submit
  }

  public var taskIDs: [String] { variants.map { RunDirectory.refitTask(variant: $0) } }

  static let keys = ["variants", "submit"]

  static func parse(_ node: Node?, variants all: [String], file: String) throws -> RefitPlan? {
    guard let node else { return nil }
    if let flag = node.bool { return flag ? RefitPlan(variants: all, submit: true) : nil }
    guard case .mapping(let mapping) = node else {
      throw ExperimentError(file: file, line: node.mark?.line, "\"refit\" must be true, false or a mapping (\(keys.joined(separator: ", ")))")
    }
    var plan = RefitPlan(variants: all, submit: true)
    for (key, value) in mapping {
      let line = key.mark?.line
      switch key.string {
      case "variants":
        if value.string == "all" { continue }
        guard case .sequence(let names) = value, !names.isEmpty else {
          throw ExperimentError(file: file, line: line, "refit variants must be all or a list of the grid's variant names")
        }
        plan.variants = try names.map { name in
          guard let text = name.string, all.contains(text) else {
            throw ExperimentError(
              file: file, line: name.mark?.line ?? line, "refit variant \"\(name.string ?? "?")\" is not one of the grid's (\(all.joined(separator: ", ")))")
          }
          return text
        }
      case "submit":
        guard let flag = value.bool else { throw ExperimentError(file: file, line: line, "refit submit must be true or false") }
        plan.submit = flag
      default:
        throw ExperimentError(file: file, line: line, "unknown refit setting \"\(key.string ?? "?")\" (known: \(keys.joined(separator: ", ")))")
      }
    }
    return plan
  }
}
