import Data
import Files
import Foundation

/// An experiment's loaded data set as one file, named by its SHA-256: what the coordinator
/// serves to workers that have no copy of the data (`data_access: served`), and what they
/// cache by that name. It holds the data as loaded (after decoding, resizing and the long
/// tail), so a worker needs no image decoder and no paths:
///
///     "QDATA" 0x01, UInt32 LE header length, the header (JSON),
///     training pixels (UInt8), training labels (Int32 LE),
///     test pixels and labels (if any), each example's fold (Int32 LE)
///
/// Every size follows from the header; a file of any other length, or whose hash is not
/// its name, is refused naming the file.
public enum DataBundle {
  static let magic: [UInt8] = Array("QDATA".utf8) + [1]
  public static let fileExtension = "qdata"

  struct Header: Codable, Equatable {
    struct Split: Codable, Equatable {
      var count: Int
      var height: Int
      var width: Int
      var channels: Int
      var classes: Int
      var classNames: [String]?
      var ids: [String]?
      var isLabelled: Bool
    }
    var training: Split
    var test: Split?
    var foldCount: Int
    var warnings: [String]
  }

  /// A bundle written: its content address and size.
  public struct Written: Equatable, Sendable {
    public var hash: String
    public var path: String
    public var bytes: Int
  }

  /// The bundle's bytes.
  public static func encode(_ data: ExperimentData) throws -> [UInt8] {
    func split(_ set: ImageDataset) -> Header.Split {
      Header.Split(
        count: set.count, height: set.height, width: set.width, channels: set.channels, classes: set.classes,
        classNames: set.classNames, ids: set.ids, isLabelled: set.isLabelled)
    }
    let header = Header(training: split(data.training), test: data.test.map(split), foldCount: data.folds.count, warnings: data.warnings)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let json = [UInt8](try encoder.encode(header))
    var bytes = magic
    bytes.reserveCapacity(magic.count + 4 + json.count + data.training.pixels.count + 8 * data.training.count + (data.test?.pixels.count ?? 0) + 4 * (data.test?.count ?? 0))
    append(UInt32(json.count), to: &bytes)
    bytes += json
    for set in [data.training] + (data.test.map { [$0] } ?? []) {
      bytes += set.pixels
      for label in set.labels { append(UInt32(bitPattern: label), to: &bytes) }
    }
    for fold in data.folds.fold { append(UInt32(bitPattern: fold), to: &bytes) }
    return bytes
  }

  /// Writes `data`'s bundle into `folder` as HASH.qdata (kept if already there: the name is
  /// the content).
  public static func write(_ data: ExperimentData, into folder: String) throws -> Written {
    let bytes = try encode(data)
    let hash = SHA256.hex(bytes)
    let path = folder + "/" + hash + "." + fileExtension
    if (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) != bytes.count {
      try FileBytes.writeAtomically(bytes, to: path)
    }
    return Written(hash: hash, path: path, bytes: bytes.count)
  }

  /// The data set of the bundle at `path`, which must hash to `hash`.
  public static func read(_ path: String, hash: String) throws -> ExperimentData {
    let bytes = try FileBytes.read(path)
    let actual = SHA256.hex(bytes)
    guard actual == hash else {
      throw DataError(file: path, "its SHA-256 is \(actual.prefix(12))…, not the data set's \(hash.prefix(12))…: a damaged or foreign file")
    }
    return try decode(bytes, file: path)
  }

  /// The data set of a bundle's bytes, every size checked against the header.
  public static func decode(_ bytes: [UInt8], file: String) throws -> ExperimentData {
    func fail(_ problem: String) -> DataError { DataError(file: file, "is not a Quorum data bundle: \(problem)") }
    guard bytes.count >= magic.count + 4, Array(bytes.prefix(magic.count)) == magic else { throw fail("it does not start with QDATA 1") }
    let headerLength = Int(word(bytes, at: magic.count))
    var offset = magic.count + 4
    guard headerLength <= bytes.count - offset else { throw fail("its header runs past the end") }
    let header: Header
    do { header = try JSONDecoder().decode(Header.self, from: Data(bytes[offset..<offset + headerLength])) } catch {
      throw fail("its header is not valid (\(error))")
    }
    offset += headerLength
    func take(_ count: Int, _ what: String) throws -> ArraySlice<UInt8> {
      guard count >= 0, count <= bytes.count - offset else { throw fail("\(what) runs past the end (the file is \(bytes.count) bytes)") }
      defer { offset += count }
      return bytes[offset..<offset + count]
    }
    func images(_ split: Header.Split, _ name: String) throws -> ImageDataset {
      let (size, overflow) = split.count.multipliedReportingOverflow(by: split.height * split.width * split.channels)
      guard !overflow, split.count >= 0, split.height > 0, split.width > 0, [1, 3].contains(split.channels), split.classes >= 0,
        split.height <= 4096, split.width <= 4096
      else { throw fail("the \(name) split's shape [\(split.count), \(split.height), \(split.width), \(split.channels)] is not an image set's") }
      let pixels = Array(try take(size, "the \(name) pixels"))
      let labelBytes = try take(4 * split.count, "the \(name) labels")
      let labels = (0..<split.count).map { Int32(bitPattern: word(labelBytes, at: labelBytes.startIndex + 4 * $0)) }
      if split.isLabelled, let bad = labels.first(where: { $0 < 0 || Int($0) >= split.classes }) {
        throw fail("a \(name) label is \(bad), outside 0..<\(split.classes)")
      }
      var set = ImageDataset(
        pixels: pixels, labels: labels, height: split.height, width: split.width, channels: split.channels, classes: split.classes,
        classNames: split.classNames)
      guard split.ids == nil || split.ids?.count == split.count else { throw fail("the \(name) split has \(split.ids!.count) ids for \(split.count) images") }
      set.ids = split.ids
      set.isLabelled = split.isLabelled
      return set
    }
    let training = try images(header.training, "training")
    let test = try header.test.map { try images($0, "test") }
    let foldBytes = try take(4 * training.count, "the folds")
    let folds = (0..<training.count).map { Int32(bitPattern: word(foldBytes, at: foldBytes.startIndex + 4 * $0)) }
    guard header.foldCount >= 2, folds.allSatisfy({ $0 >= 0 && Int($0) < header.foldCount }) else {
      throw fail("a fold is outside 0..<\(header.foldCount)")
    }
    guard offset == bytes.count else { throw fail("\(bytes.count - offset) bytes after the folds") }
    return ExperimentData(training: training, test: test, folds: FoldAssignment(fold: folds, count: header.foldCount), warnings: header.warnings)
  }

  private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
    bytes += [UInt8(truncatingIfNeeded: value), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 24)]
  }

  private static func word<Bytes: RandomAccessCollection>(_ bytes: Bytes, at index: Bytes.Index) -> UInt32 where Bytes.Element == UInt8, Bytes.Index == Int {
    UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
  }
}
