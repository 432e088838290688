import Data
import Ensemble
import Files
import Foundation
import RunLayout

/// Reads the members of a run directory (logits/VARIANT/foldK.{oof,test}.npy).
public enum MemberLibrary {
  /// The variants whose folds are all stored; the others are listed as incomplete.
  public static func load(runDirectory: String, variants: [String], folds: FoldAssignment, classes: Int) throws
    -> (members: [Member], incomplete: [String])
  {
    var members: [Member] = []
    var incomplete: [String] = []
    for variant in variants {
      if let member = try load(runDirectory: runDirectory, variant: variant, folds: folds, classes: classes) {
        members.append(member)
      } else {
        incomplete.append(variant)
      }
    }
    return (members, incomplete)
  }

  public static func load(runDirectory: String, variant: String, folds: FoldAssignment, classes: Int) throws -> Member? {
    let examples = folds.fold.count
    var outOfFold = [Float](repeating: 0, count: examples * classes)
    var covered = [Bool](repeating: false, count: examples)
    var tests: [Predictions] = []
    for fold in 0..<folds.count {
      let path = RunDirectory(runDirectory).memberOutOfFold(variant: variant, fold: fold)
      guard FileManager.default.fileExists(atPath: path) else { return nil }
      let (shape, values) = try NumPy.readFloat32(path)
      try requireFinite(values, classes: classes, path: path)
      // The fold's validation examples, in example order: exactly those the fold model
      // never trained on (folds.npy says which).
      let rows = folds.split(fold).validation
      guard shape == [rows.count, classes] else {
        throw DataError(file: path, "has shape \(shape); fold \(fold) holds \(rows.count) examples of \(classes) classes")
      }
      for (row, example) in rows.enumerated() {
        precondition(Int(folds.fold[example]) == fold && !covered[example], "fold \(fold) predicts example \(example) twice or out of its fold")
        covered[example] = true
        for c in 0..<classes { outOfFold[example * classes + c] = values[row * classes + c] }
      }
      let testPath = RunDirectory(runDirectory).memberTest(variant: variant, fold: fold)
      if FileManager.default.fileExists(atPath: testPath) {
        let (testShape, testValues) = try NumPy.readFloat32(testPath)
        try requireFinite(testValues, classes: classes, path: testPath)
        guard testShape.count == 2, testShape[1] == classes else { throw DataError(file: testPath, "has shape \(testShape), expected [n, \(classes)]") }
        tests.append(Predictions(logits: testValues, classes: classes))
      }
    }
    // Examples outside every fold (a holdout assignment) have no out-of-fold prediction.
    guard covered.allSatisfy({ $0 }) else {
      throw DataError(file: RunDirectory(runDirectory).folds, "leaves \(covered.filter { !$0 }.count) examples out of every fold: no out-of-fold predictions for them")
    }
    let test = tests.count == folds.count ? Predictions.mixture(tests, weights: [Double](repeating: 1, count: tests.count)) : nil
    var refitTest: Predictions?
    let refitPath = RunDirectory(runDirectory).refitTest(variant: variant)
    if FileManager.default.fileExists(atPath: refitPath) {
      let (shape, values) = try NumPy.readFloat32(refitPath)
      try requireFinite(values, classes: classes, path: refitPath)
      guard shape.count == 2, shape[1] == classes, test.map({ $0.rows == shape[0] }) ?? true else {
        throw DataError(file: refitPath, "has shape \(shape), expected [\(test?.rows ?? 0), \(classes)] like the fold models' test predictions")
      }
      refitTest = Predictions(logits: values, classes: classes)
    }
    return Member(name: variant, outOfFold: Predictions(logits: outOfFold, classes: classes), test: test, refitTest: refitTest)
  }

  /// Refuses NaN or infinite logits, naming the file and the row: an ensemble fed them
  /// would score and predict nonsense (NaN compares false, so it picks class 0).
  static func requireFinite(_ logits: [Float], classes: Int, path: String) throws {
    guard let bad = logits.firstIndex(where: { !$0.isFinite }) else { return }
    throw DataError(
      file: path, "holds NaN or infinite logits (row \(bad / max(classes, 1))): the member diverged or the file is damaged; retrain it or leave it out")
  }
}
