import Foundation

/// Training progress for a person: a redrawn bar on a terminal (epoch, step, images/s,
/// loss, ETA), or one plain line per epoch when the output is a file or a pipe.
public final class ProgressReporter {
  public enum Style { case bar, lines, silent }

  let style: Style
  let totalEpochs: Int
  private var lastDraw = 0.0

  public init(style: Style? = nil, totalEpochs: Int) {
    self.style = style ?? (isatty(STDERR_FILENO) == 1 ? .bar : .lines)
    self.totalEpochs = totalEpochs
  }

  /// During an epoch (drawn at most 5 times a second).
  public func step(epoch: Int, step: Int, steps: Int, imagesPerSecond: Double, loss: Double, epochETA: Double, runETA: Double) {
    guard style == .bar else { return }
    let now = Date().timeIntervalSinceReferenceDate
    guard now - lastDraw > 0.2 || step == steps else { return }
    lastDraw = now
    let width = 24
    let filled = steps > 0 ? width * step / steps : 0
    let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "") + String(repeating: " ", count: max(0, width - filled - 1))
    let line = String(
      format: "\repoch %d/%d [%@] %d/%d  %.0f img/s  loss %.4f  ETA %@ (run %@)\u{1B}[K",
      epoch + 1, totalEpochs, bar, step, steps, imagesPerSecond, loss, Self.duration(epochETA), Self.duration(runETA))
    FileHandle.standardError.write(line.data(using: .utf8)!)
  }

  /// At the end of an epoch.
  public func epochEnded(_ line: String) {
    switch style {
    case .bar: FileHandle.standardError.write(("\r" + line + "\u{1B}[K\n").data(using: .utf8)!)
    case .lines: FileHandle.standardError.write((line + "\n").data(using: .utf8)!)
    case .silent: break
    }
  }

  public func message(_ line: String) {
    if style != .silent { FileHandle.standardError.write((line + "\n").data(using: .utf8)!) }
  }

  static func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
  }
}
