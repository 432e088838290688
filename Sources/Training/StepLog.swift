import Data
import Files
import Foundation

/// One JSON line per optimizer step (`quorum train --step-log FILE`): the numbers a
/// spiking or diverging run is diagnosed from, step by step, where metrics.json keeps an
/// epoch's means. The gradient norm is the global L2 norm over every parameter's gradient
/// before clipping and before weight decay joins it: what PyTorch's
/// `torch.nn.utils.clip_grad_norm_` returns, so a peer's log reads alike.
///
/// The trainer writes the lines at its read-back points (the progress line, the epoch's
/// end), so a device is not made to wait at every step. A resumed run appends after the
/// lines of the epochs it keeps and drops those of the epoch it repeats.
public final class StepLog {
  public struct Entry: Codable, Equatable, Sendable {
    /// 1-based, as the progress lines count them.
    public var epoch: Int
    /// The step within the run, 1-based.
    public var step: Int
    /// Examples in the step's batch.
    public var batch: Int
    public var learningRate: Double
    /// SGD's momentum of the step (cycled or not); nil for AdamW.
    public var momentum: Double?
    public var loss: Double
    public var gradientNorm: Double

    public init(
      epoch: Int, step: Int, batch: Int, learningRate: Double, momentum: Double?, loss: Double, gradientNorm: Double
    ) {
      self.epoch = epoch
      self.step = step
      self.batch = batch
      self.learningRate = learningRate
      self.momentum = momentum
      self.loss = loss
      self.gradientNorm = gradientNorm
    }

    enum CodingKeys: String, CodingKey {
      case epoch, step, batch, momentum, loss
      case learningRate = "learning_rate"
      case gradientNorm = "gradient_norm"
    }
  }

  public let path: String
  private let descriptor: Int32

  /// Opens `path` for writing. `keepingEpochs`: a resumed run's completed epochs, whose
  /// lines stay (lines of later epochs, an interrupted epoch's, are dropped); nil starts
  /// the file afresh.
  public init(path: String, keepingEpochs kept: Int? = nil) throws {
    self.path = path
    if Folders.isFolder(path) { throw DataError(file: path, "is a folder: name a file for the step log") }
    try Folders.create(URL(fileURLWithPath: path).deletingLastPathComponent().path)
    var keptBytes: [UInt8] = []
    if let kept, FileManager.default.fileExists(atPath: path) {
      let entries = try Self.read(path)
      keptBytes = try entries.filter { $0.epoch <= kept }.flatMap(Self.line)
    }
    descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else { throw DataError(file: path, "cannot be written: \(String(cString: strerror(errno)))") }
    try write(bytes: keptBytes)
  }

  deinit { close(descriptor) }

  /// Appends the entries, one line each.
  public func write(_ entries: [Entry]) throws {
    try write(bytes: entries.flatMap(Self.line))
  }

  private func write(bytes: [UInt8]) throws {
    let failure = FileBytes.writeAll(bytes, to: descriptor)
    guard failure == 0 else { throw DataError(file: path, "cannot be written: \(String(cString: strerror(failure)))") }
  }

  /// JSON has no NaN or infinity; a diverged step's loss is written as the string "NaN"
  /// (or "Infinity"), which Python's `float()` reads.
  private static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
    positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

  private static func line(_ entry: Entry) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = nonFinite
    return Array(try encoder.encode(entry)) + [UInt8(ascii: "\n")]
  }

  /// The entries of a step log, naming the line that does not read. A last line without
  /// its newline (a run killed while writing it) is left out.
  public static func read(_ path: String) throws -> [Entry] {
    let bytes = try FileBytes.read(path)
    let decoder = JSONDecoder()
    decoder.nonConformingFloatDecodingStrategy = .convertFromString(
      positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    var entries: [Entry] = []
    var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    lines.removeLast()  // what follows the last newline: empty, or a torn line
    for (number, line) in lines.enumerated() where !line.isEmpty {
      do { entries.append(try decoder.decode(Entry.self, from: Foundation.Data(line))) } catch {
        throw DataError(file: path, "line \(number + 1) is not a step-log entry")
      }
    }
    return entries
  }
}
