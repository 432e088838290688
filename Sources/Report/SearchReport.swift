import Ensemble
import Foundation

/// What the report shows of a hyper-parameter search: every trial's settings, score and
/// fate; each number's score against its value; the validation score at each epoch (the
/// rungs where successive halving stopped trials).
public struct SearchReport {
  public struct Trial {
    public var index: Int
    /// Each setting's value as text, in the space's order.
    public var values: [String]
    public var score: Double?
    /// "scored", "failed", "stopped at epoch E".
    public var status: String
    public var member: String?

    public init(index: Int, values: [String], score: Double?, status: String, member: String?) {
      self.index = index
      self.values = values
      self.score = score
      self.status = status
      self.member = member
    }
  }

  public var metric: String
  public var parameters: [String]
  /// Per setting: whether it is a number drawn on a log scale (its plot's axis is log10).
  public var logScale: [Bool]
  public var trials: [Trial]

  public init(metric: String, parameters: [String], logScale: [Bool], trials: [Trial]) {
    self.metric = metric
    self.parameters = parameters
    self.logScale = logScale
    self.trials = trials
  }

  /// The section's HTML: the trials best first, a plot of the score against each numeric
  /// setting, and the trials' validation scores by epoch (`epochs`: their progress).
  func html(epochs: [ReportPage.Epoch], plot: SVGPlot) -> String {
    let escape = SVGPlot.escape
    let ranked = trials.sorted { ($0.score ?? -.infinity, -$0.index) > ($1.score ?? -.infinity, -$1.index) }
    var table = "<table><tr><th>trial</th>" + parameters.map { "<th>\(escape($0))</th>" }.joined() + "<th>\(escape(metric))</th><th>status</th><th>member</th></tr>"
    for trial in ranked {
      table += "<tr\(trial.member == nil ? "" : " class='chosen'")><td>\(trial.index)</td>" + trial.values.map { "<td>\(escape($0))</td>" }.joined()
        + "<td>\(trial.score.map { String(format: "%.4f", $0) } ?? "—")</td><td>\(escape(trial.status))</td><td>\(escape(trial.member ?? ""))</td></tr>"
    }
    var html = "<h2>Search</h2><p>\(trials.count) trials, each scored by \(escape(metric)) on its fold's validation images; the best became the members.</p>" + table + "</table>"
    for (column, name) in parameters.enumerated() {
      let points = trials.compactMap { trial -> (x: Double, y: Double)? in
        guard let score = trial.score, let value = Double(trial.values[column]) else { return nil }
        if logScale[column] { return value > 0 ? (log10(value), score) : nil }
        return (value, score)
      }
      guard points.count >= 2 else { continue }
      let label = logScale[column] ? "log10 \(name)" : name
      html += "<h3>\(escape(metric)) against \(escape(name))</h3>" + plot.points(points, color: "#1f77b4", xLabel: label, yLabel: metric)
    }
    var latest: [String: Int] = [:]
    for epoch in epochs where epoch.task.hasPrefix("trial-") { latest[epoch.task] = max(latest[epoch.task] ?? 0, epoch.attempt) }
    let series = latest.keys.sorted { Self.trialNumber($0) < Self.trialNumber($1) }.enumerated().compactMap { index, task -> SVGPlot.Series? in
      let points = epochs.filter { $0.task == task && $0.attempt == latest[task] }.compactMap { epoch in epoch.validationMetric.map { (Double(epoch.epoch), $0) } }
      guard !points.isEmpty else { return nil }
      return SVGPlot.Series(name: task, color: SVGPlot.palette[index % SVGPlot.palette.count], points: points)
    }
    if !series.isEmpty {
      html += "<h3>Validation \(escape(metric)) by epoch</h3><p>Each trial's score after each epoch; a line that ends early is a trial stopped by successive halving.</p>"
        + plot.lines(series, xLabel: "epoch", yLabel: metric)
    }
    return html
  }

  static func trialNumber(_ task: String) -> Int { Int(task.dropFirst("trial-".count).prefix { $0.isNumber }) ?? 0 }
}
