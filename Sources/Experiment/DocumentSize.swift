import Yams

/// The bounds of an experiment document, checked before anything is built from it.
///
/// YAML aliases let a short text declare an enormous tree ("billion laughs": nine levels of
/// a list of ten aliases is 10⁹ values in a few hundred bytes). Composing it is cheap, since
/// an alias shares its anchor's storage, but every reader that walks the tree (a grid's
/// values, a list setting) would expand it. The coordinator hands a worker the experiment's
/// text, so a worker parses it too: the bound protects both.
enum DocumentSize {
  /// The largest experiment file read, in bytes: a real one is a few kilobytes.
  static let maximumBytes = 1 << 20
  /// The most nodes a document may hold with every alias expanded where it is used: a grid
  /// of 10,000 variants over a dozen settings stays far below it.
  static let maximumNodes = 100_000

  /// Whether `root`, expanded, holds more than `limit` nodes. The walk stops as soon as
  /// it has counted past the limit, so it costs at most `limit` steps.
  static func exceeds(_ root: Node, limit: Int) -> Bool {
    var pending = [root]
    var count = 0
    while let node = pending.popLast() {
      count += 1
      if count > limit { return true }
      switch node {
      case .mapping(let mapping):
        for (key, value) in mapping {
          pending.append(key)
          pending.append(value)
        }
      case .sequence(let sequence): pending.append(contentsOf: sequence)
      case .scalar, .alias: break
      }
      // A mapping or list wider than the limit is refused without pushing it all.
      if pending.count > limit { return true }
    }
    return false
  }
}
