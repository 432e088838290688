import Data
import Files
import Foundation
import QuorumTestSupport
import Tensor
import XCTest

final class ImbalanceToolTests: XCTestCase {
  /// FMNIST-LT-100's labels: 6000, 3596, …, 60 of classes 0…9.
  let labels: [Int32] = LongTail.exponential(maximum: 6000, ratio: 100, classes: 10).enumerated().flatMap { c, n in
    [Int32](repeating: Int32(c), count: n)
  }

  func testStratifiedFoldsAreExhaustiveProportionalAndSeeded() {
    let k = 5
    let assignment = FoldAssignment.stratified(labels: labels, classes: 10, folds: k, seed: 3)
    XCTAssertEqual(assignment.fold.count, labels.count)
    // Every example is validated in exactly one fold.
    var seen = [Int](repeating: 0, count: labels.count)
    for f in 0..<k { for index in assignment.split(f).validation { seen[index] += 1 } }
    XCTAssert(seen.allSatisfy { $0 == 1 })
    // Class proportions per fold within one example of exact; fold sizes within one.
    for c in 0..<10 {
      let members = labels.indices.filter { labels[$0] == c }
      let exact = Double(members.count) / Double(k)
      for f in 0..<k {
        let inFold = members.filter { assignment.fold[$0] == f }.count
        XCTAssertLessThan(abs(Double(inFold) - exact), 1, "class \(c) fold \(f)")
      }
    }
    let sizes = (0..<k).map { f in assignment.fold.filter { $0 == f }.count }
    XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1)
    XCTAssertEqual(FoldAssignment.stratified(labels: labels, classes: 10, folds: k, seed: 3), assignment)
    XCTAssertNotEqual(FoldAssignment.stratified(labels: labels, classes: 10, folds: k, seed: 4), assignment)
    let repeated = FoldAssignment.repeatedStratified(labels: labels, classes: 10, folds: k, repeats: 2, seed: 3)
    XCTAssertEqual(repeated[0], assignment)
    XCTAssertNotEqual(repeated[1], assignment, "each repeat reshuffles")
    let holdout = FoldAssignment.holdout(labels: labels, classes: 10, fraction: 0.1, seed: 3)
    XCTAssertEqual(holdout.split(0).validation.count, LongTail.exponential(maximum: 6000, ratio: 100, classes: 10).map { Int((0.1 * Double($0)).rounded()) }.reduce(0, +))
  }

  func testFoldsFileRoundTripAndBadFiles() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let assignment = FoldAssignment.stratified(labels: labels, classes: 10, folds: 4, seed: 1)
    try assignment.write(to: folder + "/folds.npy")
    XCTAssertEqual(try FoldAssignment.read(folder + "/folds.npy", examples: labels.count), assignment)
    XCTAssertThrowsError(try FoldAssignment.read(folder + "/folds.npy", examples: 100)) { error in
      XCTAssert("\(error)".contains("folds.npy") && "\(error)".contains("other data"), "\(error)")
    }
    try NumPy.write([0, 1, 2], shape: [3], to: folder + "/float.npy")
    XCTAssertThrowsError(try FoldAssignment.read(folder + "/float.npy", examples: 3)) { error in
      XCTAssert("\(error)".contains("float.npy") && "\(error)".contains("int32"), "\(error)")
    }
    try FileBytes.writeAtomically(NumPy.encode([0, 2, 2] as [Int32], shape: [3]), to: folder + "/gap.npy")
    XCTAssertThrowsError(try FoldAssignment.read(folder + "/gap.npy", examples: 3)) { error in
      XCTAssert("\(error)".contains("fold 1") && "\(error)".contains("empty"), "\(error)")
    }
  }

  func testLinearProfileIsTheQuickDrawOne() {
    let counts = LongTail.linear(maximum: 1000, minimum: 10, classes: 100)
    XCTAssertEqual(counts.prefix(3), [1000, 990, 980])
    XCTAssertEqual(counts.last, 10)
    XCTAssertEqual(LongTail.histogram([10, 0, 5]), "per class [10, 0, 5], imbalance 2.0×")
  }

  func testSamplersDrawClassesWithTheirTargetProbabilities() {
    let counts = LongTail.exponential(maximum: 6000, ratio: 100, classes: 10)
    for sampling in [Sampling.classBalanced, .squareRoot] {
      let expected = sampling.classProbabilities(counts)
      var drawn = [Int](repeating: 0, count: 10)
      for epoch in 0..<4 {
        for index in sampling.order(labels: labels, classes: 10, seed: 5, epoch: epoch) { drawn[Int(labels[index])] += 1 }
      }
      let total = Double(drawn.reduce(0, +))
      for c in 0..<10 {
        // Four epochs of 14,886 draws: a binomial standard deviation under 0.2 %.
        XCTAssertEqual(Double(drawn[c]) / total, expected[c], accuracy: 0.01, "\(sampling) class \(c)")
      }
      XCTAssertEqual(sampling.order(labels: labels, classes: 10, seed: 5, epoch: 1), sampling.order(labels: labels, classes: 10, seed: 5, epoch: 1))
    }
    XCTAssertEqual(Sampling.classBalanced.classProbabilities(counts), [Double](repeating: 0.1, count: 10))
    // Within a class, members are drawn uniformly: class 0 (6,000 examples) gets ~1,489
    // draws an epoch, which must hit ~1,320 distinct examples (1 − e^(−0.248) of 6,000),
    // not a few.
    let draws = Sampling.classBalanced.order(labels: labels, classes: 10, seed: 5, epoch: 0).filter { labels[$0] == 0 }
    XCTAssertGreaterThan(Set(draws).count, 1_200, "\(Set(draws).count) distinct of \(draws.count) draws")
    let tail = Sampling.classBalanced.order(labels: labels, classes: 10, seed: 5, epoch: 0).filter { labels[$0] == 9 }
    XCTAssertEqual(Set(tail).count, 60, "all 60 tail examples are drawn")
    let shuffled = Sampling.shuffle.order(labels: labels, classes: 10, seed: 5, epoch: 0)
    XCTAssertEqual(shuffled.sorted(), Array(0..<labels.count), "shuffle is a permutation")
  }

  /// Growing classes to a count: every class reaches it, copies are virtual indices that
  /// read their original example, and each copy draws its own augmentation.
  func testGrowingClassesRepeatsExamplesWithFreshAugmentation() {
    let small: [Int32] = [0, 0, 0, 0, 0, 1, 1, 2]
    let order = Sampling.shuffle.order(labels: small, classes: 3, seed: 1, epoch: 0, growTo: 4)
    XCTAssertEqual(order.count, 5 + 4 + 4)
    let counts = (0..<3).map { c in order.filter { small[$0 % small.count] == c }.count }
    XCTAssertEqual(counts, [5, 4, 4])
    XCTAssertEqual(Set(order).count, order.count, "every copy has its own index")
    // Copies of the single class-2 example look different after augmentation.
    let dataset = ImageDataset(
      pixels: (0..<(8 * 64)).map { UInt8(($0 * 37) % 251) }, labels: small, height: 8, width: 8, channels: 1, classes: 3)
    let assembler = BatchAssembler(mean: [0], std: [1], threads: 1)
    let copies = order.filter { small[$0 % small.count] == 2 }
    let images = Tensor(shape: [copies.count, 8, 8, 1])
    var labels = [Int32](repeating: -1, count: copies.count)
    assembler.assemble(dataset, indices: copies[...], augmentation: Augmentation(shift: 2, horizontalFlip: 0.5), seed: 1, epoch: 0, images: images, labels: &labels)
    XCTAssertEqual(labels, [2, 2, 2, 2])
    let views = Set((0..<copies.count).map { Array(images.array()[($0 * 64)..<($0 * 64 + 64)]) })
    XCTAssertGreaterThan(views.count, 1)
  }

  func testClassWeightsHaveMeanOneAndTheirShape() throws {
    let counts = [1000, 100, 10]
    let inverse = try XCTUnwrap(ClassWeighting.inverseFrequency.weights(counts: counts))
    XCTAssertEqual(inverse.reduce(0, +) / 3, 1, accuracy: 1e-6)
    XCTAssertEqual(inverse[2] / inverse[0], 100, accuracy: 1e-3)
    // Effective number: (1 − β)/(1 − β^n); with β → 0 every class weighs the same, with
    // β = 0.999 the weights lie between uniform and inverse frequency.
    let effective = try XCTUnwrap(ClassWeighting.effectiveNumber(beta: 0.999).weights(counts: counts))
    XCTAssertEqual(effective.reduce(0, +) / 3, 1, accuracy: 1e-6)
    let ratio = effective[2] / effective[0]
    XCTAssert(ratio > 1 && ratio < 100, "\(effective)")
    let expected = (1 - pow(0.999, 1000.0)) / (1 - pow(0.999, 10.0))
    XCTAssertEqual(Double(ratio), expected, accuracy: 1e-3)
    XCTAssertNil(ClassWeighting.none.weights(counts: counts))
  }

  /// Stratified k-fold of a class smaller than k left some folds validating without it
  /// (and 200 folds of 145 examples made empty folds scored as "accuracy 0"): refused,
  /// naming the class and the largest k that works.
  func testFoldsLargerThanAClassAreRefused() throws {
    var counts = [Int](repeating: 20, count: 10)
    counts[9] = 2
    XCTAssertThrowsError(try FoldAssignment.checkStratifiable(classCounts: counts, folds: 5, source: "--folds 5")) { error in
      let message = "\(error)"
      XCTAssert(message.contains("--folds 5: class 9 has 2 examples") && message.contains("use at most 2 folds"), message)
    }
    XCTAssertNoThrow(try FoldAssignment.checkStratifiable(classCounts: counts, folds: 2, source: "--folds 2"))
    XCTAssertThrowsError(try FoldAssignment.checkStratifiable(classCounts: [3, 1], folds: 2, source: "k", classNames: ["cat", "dog"])) {
      XCTAssert("\($0)".contains("class dog has 1 examples") && "\($0)".contains("at least 2 examples"), "\($0)")
    }
  }

  /// A label past the intended class count (a 12 among 0…9) widened the model to 13
  /// classes, three of them never taught: refused when the count comes from the labels.
  func testAClassCountInferredFromAStrayLabelIsRefused() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let labels: [UInt8] = [0, 1, 2, 12, 0, 1]
    try FileBytes.writeAtomically(idxBytes(shape: [6, 2, 2], payload: [UInt8](repeating: 1, count: 24)), to: folder + "/images")
    try FileBytes.writeAtomically(idxBytes(shape: [6], payload: labels), to: folder + "/labels")
    let dataset = try ImageDataset.loadIDX(images: folder + "/images", labels: folder + "/labels")
    XCTAssertEqual(dataset.classes, 13)
    XCTAssertThrowsError(try dataset.checkEveryClassHasExamples(source: folder + "/labels")) { error in
      let message = "\(error)"
      XCTAssert(message.contains("labels: classes 3, 4, 5, 6, 7, 8, 9, 10, 11 of 0…12 have no training examples") && message.contains("--classes"), message)
    }
    // With the count given, the stray label itself is named.
    XCTAssertThrowsError(try ImageDataset.loadIDX(images: folder + "/images", labels: folder + "/labels", classes: 10)) {
      XCTAssert("\($0)".contains("label 12 at index 3 is outside the class range 0…9"), "\($0)")
    }
  }

}
