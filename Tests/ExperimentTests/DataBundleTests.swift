import Data
import Experiment
import Files
import Foundation
import QuorumTestSupport
import XCTest

/// The data set a coordinator serves: written and read back exactly (pixels, labels, ids,
/// class names, folds, an unlabelled test set), named by its SHA-256, and any damage
/// refused naming the file.
final class DataBundleTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func sample() -> ExperimentData {
    var training = ImageDataset(
      pixels: (0..<(6 * 4 * 3 * 3)).map { UInt8($0 % 256) }, labels: [0, 1, 2, 0, 1, 2], height: 4, width: 3, channels: 3, classes: 3,
      classNames: ["cat", "dog", "fox"])
    training.ids = ["a", "b", "c", "d", "e", "f"]
    var test = ImageDataset(pixels: Array(repeating: 9, count: 2 * 36), labels: [0, 0], height: 4, width: 3, channels: 3, classes: 3)
    test.isLabelled = false
    test.ids = ["t1", "t2"]
    return ExperimentData(
      training: training, test: test, folds: FoldAssignment(fold: [0, 1, 0, 1, 0, 1], count: 2), warnings: ["2 colour files read as grey"])
  }

  func testABundleRoundTripsAndIsNamedByItsHash() throws {
    let data = sample()
    let written = try DataBundle.write(data, into: folder)
    XCTAssertEqual(written.path, folder + "/" + written.hash + ".qdata")
    XCTAssertEqual(SHA256.hex(try FileBytes.read(written.path)), written.hash)
    XCTAssertEqual(try DataBundle.write(data, into: folder), written, "the same data set, the same name")
    let read = try DataBundle.read(written.path, hash: written.hash)
    XCTAssertEqual(read.training.pixels, data.training.pixels)
    XCTAssertEqual(read.training.labels, data.training.labels)
    XCTAssertEqual(read.training.classNames, ["cat", "dog", "fox"])
    XCTAssertEqual(read.training.ids, data.training.ids)
    XCTAssertEqual([read.training.height, read.training.width, read.training.channels, read.training.classes], [4, 3, 3, 3])
    XCTAssertEqual(read.test?.pixels, data.test?.pixels)
    XCTAssertEqual(read.test?.isLabelled, false)
    XCTAssertEqual(read.test?.ids, ["t1", "t2"])
    XCTAssertEqual(read.folds, data.folds)
    XCTAssertEqual(read.warnings, data.warnings)
    // Another fold assignment is another data set.
    var refolded = data
    refolded.folds = FoldAssignment(fold: [1, 0, 1, 0, 1, 0], count: 2)
    XCTAssertNotEqual(try DataBundle.write(refolded, into: folder).hash, written.hash)
  }

  func testDamagedBundlesAreRefusedNamingTheFile() throws {
    let written = try DataBundle.write(sample(), into: folder)
    var bytes = try FileBytes.read(written.path)
    bytes[bytes.count - 5] ^= 1
    let damaged = folder + "/damaged.qdata"
    try FileBytes.writeAtomically(bytes, to: damaged)
    XCTAssertThrowsError(try DataBundle.read(damaged, hash: written.hash)) {
      XCTAssert("\($0)".contains(damaged) && "\($0)".contains("SHA-256"), "\($0)")
    }
    XCTAssertNotEqual(SHA256.hex(ofFile: damaged), written.hash)
    // Decoded without the hash check, every size is still held to the header.
    let original = try FileBytes.read(written.path)
    for (cut, problem) in [(original.count - 3, "runs past the end"), (12, "header runs past the end"), (3, "QDATA")] {
      XCTAssertThrowsError(try DataBundle.decode(Array(original.prefix(cut)), file: "x.qdata")) {
        XCTAssert("\($0)".contains("x.qdata") && "\($0)".contains(problem), "cut at \(cut): \($0)")
      }
    }
    XCTAssertThrowsError(try DataBundle.decode(original + [0], file: "x.qdata")) { XCTAssert("\($0)".contains("1 bytes after the folds"), "\($0)") }
  }
}
