import Data
import Experiment
import Files
import Foundation
import QuorumTestSupport
import XCTest

/// The one description of where examples come from: an experiment's `data:` keys, which
/// `quorum train`'s data flags are spelled as, loaded by `DataSource.examples()`.
final class DataSourceTests: XCTestCase {
  var folder = ""

  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func writePNG(_ value: UInt8, _ path: String) throws {
    let image = DecodedImage(pixels: [UInt8](repeating: value, count: 36), height: 6, width: 6, channels: 1)
    try Folders.create((folder + "/" + path as NSString).deletingLastPathComponent)
    try FileBytes.writeAtomically(try ImageCodec.encodePNG(image), to: folder + "/" + path)
  }

  func writeIDX(_ stem: String, count: Int, labels: Bool = true) throws {
    try FileBytes.writeAtomically(idxBytes(shape: [count, 6, 6], payload: (0..<count * 36).map { UInt8($0 % 200) }), to: folder + "/\(stem)-images-idx3-ubyte")
    if labels {
      try FileBytes.writeAtomically(idxBytes(shape: [count], payload: (0..<count).map { UInt8($0 % 2) }), to: folder + "/\(stem)-labels-idx1-ubyte")
    }
  }

  func examples(_ settings: [String: String]) throws -> Examples {
    try DataSource(file: "exp.yaml", settings: settings).examples()
  }

  /// Each layout of the training set with each layout of the test set that `quorum train`'s
  /// flags name (`--test-image-folder-only`, `--test-array`, `--test-images` without labels,
  /// `--test-folders`), as an experiment's `test_layout`.
  func testEveryTrainingLayoutTakesEveryTestLayout() throws {
    for (name, label) in [("a1", "cat"), ("a2", "cat"), ("b1", "dog"), ("b2", "dog")] { try writePNG(label == "cat" ? 10 : 200, "train/\(label)/\(name).png") }
    try writePNG(50, "flat/x.png")
    try writePNG(60, "flat/y.png")
    try writePNG(70, "labelled/dog/z.png")
    try FileBytes.writeAtomically(NumPy.encode([UInt8](repeating: 3, count: 3 * 36), shape: [3, 6, 6]), to: folder + "/test.npy")
    try writeIDX("train", count: 6)
    try writeIDX("t10k", count: 4, labels: false)

    let folders = try examples(["layout": "class-folders", "train": folder + "/train", "test": folder + "/flat", "test_layout": "image-folder"])
    XCTAssertEqual(folders.training.count, 4)
    XCTAssertEqual(folders.training.classNames, ["cat", "dog"])
    XCTAssertEqual(folders.test?.count, 2)
    XCTAssertEqual(folders.test?.isLabelled, false)
    XCTAssertEqual(folders.test?.ids, ["x", "y"])
    XCTAssertEqual(folders.test?.classes, 2, "an unlabelled set has the training set's classes")

    let labelled = try examples(["layout": "class-folders", "train": folder + "/train", "test": folder + "/labelled"])
    XCTAssertEqual(labelled.test?.labels, [1], "the test folder's dog is the training set's class 1")

    let array = try examples(["train": folder, "test": folder + "/test.npy", "test_layout": "array"])
    XCTAssertEqual(array.training.count, 6)
    XCTAssertEqual(array.test?.count, 3)
    XCTAssertEqual(array.test?.isLabelled, false)

    // The IDX folder's own t10k files, here without labels: an unlabelled test set.
    let own = try examples(["train": folder])
    XCTAssertEqual(own.test?.count, 4)
    XCTAssertEqual(own.test?.isLabelled, false)
    XCTAssertNil(try examples(["train": folder, "test": "none"]).test)

    // IDX files named one by one (`--train-images`, `--train-labels`, `--test-images`).
    let files = try examples([
      "train": folder + "/train-images-idx3-ubyte", "train_labels": folder + "/train-labels-idx1-ubyte",
      "test": folder + "/train-images-idx3-ubyte", "test_labels": folder + "/train-labels-idx1-ubyte", "classes": "3",
    ])
    XCTAssertEqual(files.training.classes, 3)
    XCTAssertEqual(files.test?.labels, files.training.labels)
  }

  func testBadSourcesNameTheKey() throws {
    try writeIDX("train", count: 6)
    for (settings, mentions) in [
      (["train": folder, "test": folder, "test_layout": "jpeg"], ["exp.yaml", "test_layout jpeg", "image-folder"]),
      (["train": folder + "/train-images-idx3-ubyte"], ["train_labels"]),
      (["train": folder, "classes": "one"], ["classes must be a whole number"]),
      (["train": folder, "layout": "csv"], ["layout csv needs images"]),
      (["train": folder + "/nowhere"], ["nowhere"]),
    ] {
      XCTAssertThrowsError(try examples(settings), "\(settings)") { error in
        for part in mentions { XCTAssert("\(error)".contains(part), "\(settings): \(error)") }
      }
    }
  }
}
