import Data
import Ensemble
import Files
import Foundation
import Report
import QuorumTestSupport
import XCTest

/// Out-of-fold assembly from a run directory.
final class MemberLibraryTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  /// Each fold's file holds logits that spell out the fold that made them; after assembly,
  /// every example carries the mark of the one model that did not train on it (folds.npy),
  /// and the test predictions are the folds' average.
  func testEveryExampleIsPredictedByTheModelThatDidNotSeeIt() throws {
    let classes = 4
    let assignment = (0..<103).map { Int32(($0 * 7) % 5) }
    let folds = FoldAssignment(fold: assignment, count: 5)
    for fold in 0..<5 {
      let rows = folds.split(fold).validation
      // logits [fold, 0, 0, 0]: log p0 − log p1 = fold.
      let values: [Float] = rows.flatMap { _ -> [Float] in [Float(fold), 0, 0, 0] }
      try NumPy.write(values, shape: [rows.count, classes], to: "\(folder)/logits/v/fold\(fold).oof.npy")
      try NumPy.write([Float](repeating: Float(fold), count: 2 * classes), shape: [2, classes], to: "\(folder)/logits/v/fold\(fold).test.npy")
    }
    let member = try XCTUnwrap(try MemberLibrary.load(runDirectory: folder, variant: "v", folds: folds, classes: classes))
    for example in 0..<assignment.count {
      let p = member.outOfFold.logProbabilities
      XCTAssertEqual(p[example * classes] - p[example * classes + 1], Double(assignment[example]), accuracy: 1e-5, "example \(example)")
    }
    let test = try XCTUnwrap(member.test)
    XCTAssertEqual(test.rows, 2)
    XCTAssertEqual(exp(test.logProbabilities[0]), 0.25, accuracy: 1e-6, "uniform rows stay uniform when averaged")

    // A missing fold leaves the variant incomplete; a wrong shape names the file.
    try FileManager.default.removeItem(atPath: "\(folder)/logits/v/fold3.oof.npy")
    XCTAssertNil(try MemberLibrary.load(runDirectory: folder, variant: "v", folds: folds, classes: classes))
    try NumPy.write([Float](repeating: 0, count: 3 * classes), shape: [3, classes], to: "\(folder)/logits/v/fold3.oof.npy")
    XCTAssertThrowsError(try MemberLibrary.load(runDirectory: folder, variant: "v", folds: folds, classes: classes)) {
      XCTAssert("\($0)".contains("fold3.oof.npy") && "\($0)".contains("fold 3 holds"), "\($0)")
    }
  }

  /// NaN logits (a member that diverged) made `quorum report` trap converting a NaN
  /// confidence: they are refused where they are read, naming the file and the row.
  func testNaNLogitsAreRefusedNamingTheFileAndRow() throws {
    let classes = 3
    let folds = FoldAssignment(fold: (0..<10).map { Int32($0 % 2) }, count: 2)
    for fold in 0..<2 {
      var values = [Float](repeating: 0, count: 5 * classes)
      if fold == 1 { values[2 * classes + 1] = .nan }
      try NumPy.write(values, shape: [5, classes], to: "\(folder)/logits/v/fold\(fold).oof.npy")
    }
    XCTAssertThrowsError(try MemberLibrary.load(runDirectory: folder, variant: "v", folds: folds, classes: classes)) { error in
      let message = "\(error)"
      XCTAssert(message.contains("fold1.oof.npy") && message.contains("NaN") && message.contains("row 2"), message)
    }
  }

}
