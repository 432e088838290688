import Data
import Ensemble
import Foundation
import Training
import RunLayout

/// report.html: one self-contained page (inline SVG and PNG, no external files) with the
/// methods' scores and gains, per-class recall against class size, the confusion matrix,
/// a reliability diagram, learning curves, the most confident mistakes, and how the run
/// was made (the experiment file, the Quorum version, the command line).
public struct ReportPage {
  /// One epoch of one task, from the run's progress.jsonl.
  public struct Epoch: Decodable {
    public var task: String
    public var attempt: Int
    public var epoch: Int
    public var loss: Double
    public var validationMetric: Double?
  }

  public var experiment: String
  public var version: String
  public var commandLine: String
  public var experimentText: String
  public var classNames: [String]
  public var training: ImageDataset
  public var members: [Member]
  public var results: [MethodResult]
  public var scores: [MethodScores]
  public var chosen: Int
  public var memberTemperatures: [Double]
  public var epochs: [Epoch]
  /// The competition's metric: it picked the submission, and heads the scores table.
  public var objective: Metric = .balancedAccuracy
  /// A heat map of where a model saw the predicted class in a training example (row,
  /// class), at the model's resolution; nil where there is none to show.
  public typealias Explanation = (_ row: Int, _ predictedClass: Int) -> (values: [Float], height: Int, width: Int)?
  public var explain: Explanation?
  /// Which model the heat maps come from, for the caption.
  public var explainedBy: String?
  /// A hyper-parameter search before the members, if the run had one.
  public var search: SearchReport?

  public init(
    experiment: String, version: String, commandLine: String, experimentText: String, classNames: [String], training: ImageDataset,
    members: [Member], results: [MethodResult], scores: [MethodScores], chosen: Int, memberTemperatures: [Double], epochs: [Epoch]
  ) {
    self.experiment = experiment
    self.version = version
    self.commandLine = commandLine
    self.experimentText = experimentText
    self.classNames = classNames
    self.training = training
    self.members = members
    self.results = results
    self.scores = scores
    self.chosen = chosen
    self.memberTemperatures = memberTemperatures
    self.epochs = epochs
  }

  public func explained(by model: String, _ explain: @escaping Explanation) -> ReportPage {
    var page = self
    page.explain = explain
    page.explainedBy = model
    return page
  }

  /// Reads progress.jsonl (missing: no learning curves; a torn last line is skipped).
  public static func epochs(runDirectory: String) -> [Epoch] {
    guard let data = FileManager.default.contents(atPath: RunDirectory(runDirectory).progress) else { return [] }
    let decoder = JSONDecoder()
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { try? decoder.decode(Epoch.self, from: Data($0.utf8)) }
  }

  public func html() throws -> String {
    let escape = SVGPlot.escape
    let plot = SVGPlot()
    let labels = training.labels
    var sections: [String] = []

    // Scores of every method.
    let headline = objective == .balancedAccuracy || objective == .negativeLogLikelihood ? nil : objective
    var table = "<table><tr><th>method</th>" + (headline.map { "<th>OOF \(escape($0.spelling))</th><th>test \(escape($0.spelling))</th>" } ?? "") + "<th>OOF accuracy</th><th>OOF balanced acc.</th><th>OOF macro-F1</th><th>OOF NLL</th><th>OOF lowest recall</th><th>test balanced acc.</th><th>test lowest recall</th><th>test NLL</th></tr>"
    for (index, score) in scores.enumerated() {
      let o = score.outOfFold
      let t = score.test.map { String(format: "<td>%.4f</td><td>%.3f</td><td>%.4f</td>", $0.balancedAccuracy, $0.lowestRecall, $0.negativeLogLikelihood) } ?? "<td>—</td><td>—</td><td>—</td>"
      let first = headline.map { metric in
        String(format: "<td>%.4f</td><td>%@</td>", metric.value(o), score.test.map { String(format: "%.4f", metric.value($0)) } ?? "—")
      } ?? ""
      table += String(format: "<tr%@><td>%@</td>%@<td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.3f</td>%@</tr>",
        index == chosen ? " class='chosen'" : "", escape(score.name) + (index == chosen ? " (submitted)" : ""), first, o.accuracy, o.balancedAccuracy, o.macroF1,
        o.negativeLogLikelihood, o.lowestRecall, t)
    }
    sections.append("<h2>Scores</h2><p>Out-of-fold scores over the training set; methods that are fitted (Caruana, weights, stacking, temperature) are scored by cross-validation over the same folds, never on data they were fitted on. The submitted method has the best out-of-fold \(escape(objective.spelling)).</p>" + table + "</table>")

    // Gain of each method.
    let balanced = scores.map { $0.outOfFold.balancedAccuracy } + scores.compactMap { $0.test?.balancedAccuracy }
    let low = max(0, (balanced.min() ?? 0) - 0.05)
    var bars = scores.map { (label: $0.name + " (OOF)", value: $0.outOfFold.balancedAccuracy, color: "#1f77b4") }
    bars += scores.compactMap { score in score.test.map { (label: score.name + " (test)", value: $0.balancedAccuracy, color: "#ff7f0e") } }
    sections.append("<h2>Gain of each method</h2><p>Balanced accuracy, out of fold and on the test set.</p>" + plot.bars(bars, xLabel: "balanced accuracy", range: low...1))

    // Per-class recall against class size: best member against the submitted ensemble.
    let counts = training.classCounts
    let order = counts.indices.sorted { counts[$0] > counts[$1] }
    let bestRecall = scores[0].outOfFold.perClassRecall
    let chosenRecall = scores[chosen].outOfFold.perClassRecall
    let recallPlot = plot.lines(
      [
        SVGPlot.Series(name: scores[0].name, color: "#7f7f7f", points: order.enumerated().map { (Double($0.offset), bestRecall[$0.element]) }, dashed: true),
        SVGPlot.Series(name: scores[chosen].name, color: "#d62728", points: order.enumerated().map { (Double($0.offset), chosenRecall[$0.element]) }),
      ], xLabel: "classes, largest first (training examples)", yLabel: "out-of-fold recall", yRange: 0...1,
      xTicks: order.enumerated().map { (Double($0.offset), "\(counts[$0.element])") })
    sections.append("<h2>Recall against class size</h2>" + recallPlot)

    // Confusion matrix and reliability of the submitted method.
    sections.append("<h2>Confusion matrix (\(escape(scores[chosen].name)), out of fold)</h2>" + plot.heatMap(scores[chosen].outOfFold.confusion, labels: classNames))
    sections.append("<h2>Reliability</h2><p>Accuracy against confidence in 10 bins (out of fold); the diagonal is perfect calibration.</p>"
      + plot.lines([
        SVGPlot.Series(name: "perfect calibration", color: "#bbbbbb", points: [(0, 0), (1, 1)], dashed: true),
        SVGPlot.Series(name: scores[0].name, color: "#7f7f7f", points: reliability(results[0].outOfFold)),
        SVGPlot.Series(name: scores[chosen].name, color: "#d62728", points: reliability(results[chosen].outOfFold)),
      ], xLabel: "confidence", yLabel: "accuracy", yRange: 0...1))

    // Learning curves.
    // (A search's trials have their own plot in its section.)
    let memberEpochs = epochs.filter { !$0.task.hasPrefix("trial-") }
    if !memberEpochs.isEmpty {
      var latest: [String: Int] = [:]
      for epoch in memberEpochs { latest[epoch.task] = max(latest[epoch.task] ?? 0, epoch.attempt) }
      let tasks = latest.keys.sorted()
      let series = tasks.enumerated().map { index, task in
        SVGPlot.Series(
          name: task, color: SVGPlot.palette[index % SVGPlot.palette.count],
          points: memberEpochs.filter { $0.task == task && $0.attempt == latest[task] }.map { (Double($0.epoch), $0.loss) })
      }
      sections.append("<h2>Learning curves</h2><p>Training loss per epoch of every member's fold models.</p>" + plot.lines(series, xLabel: "epoch", yLabel: "training loss"))
    }

    if let search { sections.append(search.html(epochs: epochs, plot: plot)) }

    // The most confident mistakes of the submitted method (out of fold).
    sections.append("<h2>Most confident mistakes (\(escape(scores[chosen].name)), out of fold)</h2>" + (try mistakes(results[chosen].outOfFold, labels: labels)))

    // How the run was made.
    var memberTable = "<table><tr><th>member</th><th>its own temperature</th></tr>"
    for (member, temperature) in zip(members, memberTemperatures) { memberTable += String(format: "<tr><td>%@</td><td>%.3f</td></tr>", escape(member.name), temperature) }
    sections.append("<h2>The run</h2><p>Quorum \(escape(version)); command line: <code>\(escape(commandLine))</code></p>" + memberTable
      + "</table><h3>Experiment file (every member's settings)</h3><pre>\(escape(experimentText))</pre>")

    return """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8"><title>Quorum report: \(escape(experiment))</title>
      <style>
      body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
      table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: right; }
      td:first-child, th:first-child { text-align: left; } tr.chosen { background: #fff3c4; }
      .mistakes { display: flex; flex-wrap: wrap; gap: 10px; } figure { margin: 0; font-size: 11px; width: 236px; }
      figure img { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #ccc; }
      pre { background: #f6f6f6; padding: 1em; font-size: 12px; overflow-x: auto; }
      </style></head>
      <body><h1>Quorum report: \(escape(experiment))</h1>
      \(sections.joined(separator: "\n"))
      <script>
      // Marks the page as rendered, with the number of plots that have a size: the test
      // opens the page in headless Chromium and reads this back.
      const plots = [...document.querySelectorAll('svg.plot')].filter(s => s.getBoundingClientRect().width > 0).length;
      document.body.setAttribute('data-rendered-plots', String(plots));
      </script>
      </body></html>
      """
  }

  /// (mean confidence, accuracy) of 10 equal-width confidence bins (empty bins left out).
  func reliability(_ predictions: Predictions) -> [(x: Double, y: Double)] {
    var confidenceSum = [Double](repeating: 0, count: 10)
    var correct = [Double](repeating: 0, count: 10)
    var count = [Double](repeating: 0, count: 10)
    for row in 0..<predictions.rows {
      let predicted = predictions.predictedClass(row: row)
      let confidence = exp(predictions.logProbabilities[row * predictions.classes + predicted])
      let bin = min(9, Int(confidence * 10))
      confidenceSum[bin] += confidence
      correct[bin] += predicted == Int(training.labels[row]) ? 1 : 0
      count[bin] += 1
    }
    var points: [(x: Double, y: Double)] = []
    for bin in 0..<10 where count[bin] > 0 { points.append((confidenceSum[bin] / count[bin], correct[bin] / count[bin])) }
    return points
  }

  /// The 12 wrong predictions made with the highest confidence, as embedded PNG images.
  func mistakes(_ predictions: Predictions, labels: [Int32]) throws -> String {
    var wrong: [(row: Int, predicted: Int, confidence: Double)] = []
    for row in 0..<predictions.rows {
      let predicted = predictions.predictedClass(row: row)
      if predicted != Int(labels[row]) { wrong.append((row, predicted, exp(predictions.logProbabilities[row * predictions.classes + predicted]))) }
    }
    wrong.sort { $0.confidence > $1.confidence }
    guard !wrong.isEmpty else { return "<p>None.</p>" }
    var html = "<div class='mistakes'>"
    for mistake in wrong.prefix(12) {
      let size = training.imageSize
      let pixels = Array(training.pixels[(mistake.row * size)..<((mistake.row + 1) * size)])
      let png = try ImageCodec.encodePNG(DecodedImage(pixels: pixels, height: training.height, width: training.width, channels: training.channels))
      var overlay = ""
      if let map = explain?(mistake.row, mistake.predicted) {
        overlay = String(format: "<img class='cam' alt='Grad-CAM of example %d' src='data:image/png;base64,%@'>", mistake.row,
          Data(try Self.overlayPNG(pixels: pixels, height: training.height, width: training.width, channels: training.channels, heat: map)).base64EncodedString())
      }
      html += String(format: "<figure><img alt='example %d' src='data:image/png;base64,%@'>%@<figcaption>#%d: %@, predicted %@ (%.2f)</figcaption></figure>",
        mistake.row, Data(png).base64EncodedString(), overlay, mistake.row, SVGPlot.escape(classNames[Int(labels[mistake.row])]),
        SVGPlot.escape(classNames[mistake.predicted]), mistake.confidence)
    }
    let caption = explainedBy.map {
      "<p>Beside each image, its Grad-CAM heat map for the predicted class (red: the strongest evidence), from \(SVGPlot.escape($0)): the fold model that did not train on the example.</p>"
    } ?? "<p>No Grad-CAM heat maps: the checkpoints are not in the run directory.</p>"
    return html + "</div>" + caption
  }

  /// The image in grey with the heat map (bilinearly upsampled) laid over it in a blue →
  /// red colour scale, as an RGB PNG.
  static func overlayPNG(pixels: [UInt8], height: Int, width: Int, channels: Int, heat: (values: [Float], height: Int, width: Int)) throws -> [UInt8] {
    var rgb = [UInt8](repeating: 0, count: height * width * 3)
    for y in 0..<height {
      for x in 0..<width {
        // Pixel centres mapped onto the map's grid.
        let fy = min(max((Float(y) + 0.5) * Float(heat.height) / Float(height) - 0.5, 0), Float(heat.height - 1))
        let fx = min(max((Float(x) + 0.5) * Float(heat.width) / Float(width) - 0.5, 0), Float(heat.width - 1))
        let (y0, x0) = (Int(fy), Int(fx))
        let (y1, x1) = (min(y0 + 1, heat.height - 1), min(x0 + 1, heat.width - 1))
        let (dy, dx) = (fy - Float(y0), fx - Float(x0))
        func at(_ r: Int, _ c: Int) -> Float { heat.values[r * heat.width + c] }
        let t = (1 - dy) * ((1 - dx) * at(y0, x0) + dx * at(y0, x1)) + dy * ((1 - dx) * at(y1, x0) + dx * at(y1, x1))
        var grey: Float = 0
        for c in 0..<channels { grey += Float(pixels[(y * width + x) * channels + c]) }
        grey /= Float(channels)
        let colour = [1.5 - abs(4 * t - 3), 1.5 - abs(4 * t - 2), 1.5 - abs(4 * t - 1)].map { min(max($0, 0), 1) * 255 }
        for c in 0..<3 { rgb[(y * width + x) * 3 + c] = UInt8(min(max(0.45 * grey + 0.55 * colour[c], 0), 255)) }
      }
    }
    return try ImageCodec.encodePNG(DecodedImage(pixels: rgb, height: height, width: width, channels: 3))
  }
}
