import Ensemble
import Foundation

/// Small inline SVG charts for the report: no scripts, no external files, so the page is
/// one self-contained file that opens anywhere.
struct SVGPlot {
  struct Series {
    var name: String
    var color: String
    var points: [(x: Double, y: Double)]
    var dashed = false
    /// false: markers only (a scatter).
    var connected = true
  }

  let width = 560.0
  let height = 300.0
  let margin = (left: 56.0, right: 16.0, top: 16.0, bottom: 44.0)

  static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

  static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
      .replacingOccurrences(of: "\"", with: "&quot;")
  }

  /// Lines with markers; x and y ranges from the data unless given.
  func lines(_ series: [Series], xLabel: String, yLabel: String, yRange: ClosedRange<Double>? = nil, xTicks: [(Double, String)]? = nil) -> String {
    let xs = series.flatMap { $0.points.map(\.x) }
    let ys = series.flatMap { $0.points.map(\.y) }
    guard let xMin = xs.min(), let xMax = xs.max(), let yMinData = ys.min(), let yMaxData = ys.max() else { return "<p>(no data)</p>" }
    let yRange = yRange ?? (yMinData == yMaxData ? (yMinData - 1)...(yMaxData + 1) : yMinData...yMaxData)
    let plotWidth = width - margin.left - margin.right
    let plotHeight = height - margin.top - margin.bottom
    func px(_ x: Double) -> Double { margin.left + (xMax == xMin ? 0.5 : (x - xMin) / (xMax - xMin)) * plotWidth }
    func py(_ y: Double) -> Double { margin.top + (1 - (y - yRange.lowerBound) / (yRange.upperBound - yRange.lowerBound)) * plotHeight }
    var svg = frame(xLabel: xLabel, yLabel: yLabel)
    for tick in 0...4 {
      let y = yRange.lowerBound + Double(tick) / 4 * (yRange.upperBound - yRange.lowerBound)
      svg += String(format: "<line x1='%.1f' x2='%.1f' y1='%.1f' y2='%.1f' stroke='#eee'/>", margin.left, width - margin.right, py(y), py(y))
      svg += String(format: "<text x='%.1f' y='%.1f' text-anchor='end' font-size='11'>%@</text>", margin.left - 4, py(y) + 4, format(y))
    }
    for (x, label) in xTicks ?? stride(from: 0, through: 4, by: 1).map({ let x = xMin + Double($0) / 4 * (xMax - xMin); return (x, format(x)) }) {
      svg += String(format: "<text x='%.1f' y='%.1f' text-anchor='middle' font-size='11'>%@</text>", px(x), height - margin.bottom + 14, Self.escape(label))
    }
    for (index, item) in series.enumerated() {
      let path = item.points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
      if item.connected {
        svg += "<polyline fill='none' stroke='\(item.color)' stroke-width='2'\(item.dashed ? " stroke-dasharray='5,3'" : "") points='\(path)'/>"
      }
      for point in item.points {
        svg += String(format: "<circle cx='%.1f' cy='%.1f' r='2.5' fill='%@'/>", px(point.x), py(point.y), item.color)
      }
      svg += String(format: "<text x='%.1f' y='%.1f' font-size='11' fill='%@'>%@</text>", margin.left + 8, margin.top + 12 + Double(index) * 14, item.color, Self.escape(item.name))
    }
    return svg + "</svg>"
  }

  /// A scatter of points (markers, no lines), ranges from the data.
  func points(_ points: [(x: Double, y: Double)], color: String, xLabel: String, yLabel: String) -> String {
    lines([Series(name: "", color: color, points: points, connected: false)], xLabel: xLabel, yLabel: yLabel)
  }

  /// Horizontal bars, one per label, with the value written at the end.
  func bars(_ values: [(label: String, value: Double, color: String)], xLabel: String, range: ClosedRange<Double>) -> String {
    let rowHeight = 22.0
    // Room for the longest label at ~6.5 px a character (11–12 px sans-serif).
    let labelWidth = min(460, max(120, Double(values.map(\.label.count).max() ?? 0) * 6.5 + 12))
    let total = Double(values.count) * rowHeight + 40
    let barWidth = 300.0
    var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(labelWidth + barWidth + 80))' height='\(Int(total))' class='plot'>"
    for (index, item) in values.enumerated() {
      let y = 8 + Double(index) * rowHeight
      let length = max(0, (item.value - range.lowerBound) / (range.upperBound - range.lowerBound)) * barWidth
      svg += String(format: "<text x='%.1f' y='%.1f' text-anchor='end' font-size='12'>%@</text>", labelWidth - 6, y + 14, Self.escape(item.label))
      svg += String(format: "<rect x='%.1f' y='%.1f' width='%.1f' height='16' fill='%@'/>", labelWidth, y + 2, length, item.color)
      svg += String(format: "<text x='%.1f' y='%.1f' font-size='11'>%.4f</text>", labelWidth + length + 4, y + 14, item.value)
    }
    svg += String(format: "<text x='%.1f' y='%.1f' font-size='11'>%@ (axis from %@)</text>", labelWidth, total - 8, Self.escape(xLabel), format(range.lowerBound))
    return svg + "</svg>"
  }

  /// A matrix of counts as a heat map, rows = true class, columns = predicted class.
  func heatMap(_ matrix: [[Int]], labels: [String]) -> String {
    let cell = min(40.0, 420.0 / Double(max(labels.count, 1)))
    let offset = 90.0
    let size = offset + cell * Double(labels.count) + 10
    var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(size))' height='\(Int(size + 20))' class='plot'>"
    for (row, counts) in matrix.enumerated() {
      let total = max(counts.reduce(0, +), 1)
      for (column, count) in counts.enumerated() {
        let share = Double(count) / Double(total)
        let shade = Int(255 - share * 200)
        svg += String(format: "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='rgb(%d,%d,255)' stroke='#fff'/>",
          offset + Double(column) * cell, offset + Double(row) * cell, cell, cell, shade, shade)
        if cell >= 24 {
          svg += String(format: "<text x='%.1f' y='%.1f' text-anchor='middle' font-size='9'>%d</text>",
            offset + (Double(column) + 0.5) * cell, offset + (Double(row) + 0.6) * cell, count)
        }
      }
      svg += String(format: "<text x='%.1f' y='%.1f' text-anchor='end' font-size='10'>%@</text>", offset - 4, offset + (Double(row) + 0.6) * cell, Self.escape(String(labels[row].prefix(12))))
      svg += String(format: "<text x='%.1f' y='%.1f' font-size='10' transform='rotate(-60 %.1f %.1f)'>%@</text>",
        offset + (Double(row) + 0.5) * cell, offset - 4, offset + (Double(row) + 0.5) * cell, offset - 4, Self.escape(String(labels[row].prefix(12))))
    }
    svg += String(format: "<text x='%.1f' y='%.1f' font-size='11'>rows: true class; columns: predicted (shade: share of the row)</text>", 4.0, size + 14)
    return svg + "</svg>"
  }

  private func frame(xLabel: String, yLabel: String) -> String {
    "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(width))' height='\(Int(height))' class='plot'>"
      + String(format: "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='none' stroke='#999'/>", margin.left, margin.top,
        width - margin.left - margin.right, height - margin.top - margin.bottom)
      + String(format: "<text x='%.1f' y='%.1f' text-anchor='middle' font-size='12'>%@</text>", margin.left + (width - margin.left - margin.right) / 2, height - 8, Self.escape(xLabel))
      + String(format: "<text x='14' y='%.1f' text-anchor='middle' font-size='12' transform='rotate(-90 14 %.1f)'>%@</text>", height / 2, height / 2, Self.escape(yLabel))
  }

  private func format(_ value: Double) -> String {
    abs(value) >= 100 ? String(format: "%.0f", value) : abs(value) >= 1 ? String(format: "%.2f", value) : String(format: "%.3f", value)
  }
}
