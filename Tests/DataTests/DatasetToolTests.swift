import Data
import Files
import Foundation
import QuorumTestSupport
import Tensor
import XCTest

final class DatasetToolTests: XCTestCase {
  /// The benchmark protocol's FMNIST-LT-100 counts.
  func testExponentialProfileGivesTheProtocolsLongTail() {
    XCTAssertEqual(
      LongTail.exponential(maximum: 6000, ratio: 100, classes: 10), [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60])
  }

  func testFirstPerClassKeepsFileOrder() {
    let dataset = ImageDataset(
      pixels: (0..<8).map { UInt8($0) }, labels: [1, 0, 1, 0, 1, 0, 1, 1], height: 1, width: 1, channels: 1, classes: 2)
    let subset = LongTail.firstPerClass(dataset, counts: [2, 1])
    XCTAssertEqual(subset.pixels, [0, 1, 3])
    XCTAssertEqual(subset.labels, [1, 0, 0])
  }

  func testStratifiedHoldoutIsExhaustiveProportionalAndSeeded() {
    let labels = (0..<1000).map { Int32($0 < 600 ? 0 : ($0 < 900 ? 1 : 2)) }
    let split = Split.stratifiedHoldout(labels: labels, classes: 3, fraction: 0.2, seed: 4)
    XCTAssertEqual(Set(split.training).union(split.validation), Set(0..<1000))
    XCTAssert(Set(split.training).isDisjoint(with: split.validation))
    let held = (0..<3).map { c in split.validation.filter { labels[$0] == c }.count }
    XCTAssertEqual(held, [120, 60, 20])
    XCTAssertEqual(Split.stratifiedHoldout(labels: labels, classes: 3, fraction: 0.2, seed: 4).validation, split.validation)
    XCTAssertNotEqual(Split.stratifiedHoldout(labels: labels, classes: 3, fraction: 0.2, seed: 5).validation, split.validation)
  }

  func testNumPyRoundTripAndHeaderLayout() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let values: [Float] = [1.5, -2, 3.25, 0, 7, -0.125]
    try NumPy.write(values, shape: [2, 3], to: folder + "/a.npy")
    let bytes = try FileBytes.read(folder + "/a.npy")
    XCTAssertEqual((bytes.count - values.count * 4) % 64, 0, "header padded to 64 bytes")
    XCTAssert(String(decoding: bytes[10..<80], as: UTF8.self).hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"))
    let (shape, read) = try NumPy.readFloat32(folder + "/a.npy")
    XCTAssertEqual(shape, [2, 3])
    XCTAssertEqual(read, values)
    try FileBytes.writeAtomically(Array(bytes.dropLast(4)), to: folder + "/short.npy")
    XCTAssertThrowsError(try NumPy.readFloat32(folder + "/short.npy")) { XCTAssert("\($0)".contains("short.npy") && "\($0)".contains("payload")) }
  }

  func testBatchAssemblyNormalisesAndAugmentsDeterministically() {
    // One 3×4 image with pixels 0…11.
    let dataset = ImageDataset(pixels: (0..<12).map { UInt8($0 * 20) }, labels: [2], height: 3, width: 4, channels: 1, classes: 3)
    let assembler = BatchAssembler(mean: [0.5], std: [0.25], threads: 2)
    let images = Tensor(shape: [1, 3, 4, 1])
    var label: Int32 = -1
    assembler.assemble(dataset, indices: [0][...], augmentation: .none, seed: 1, epoch: 0, images: images, labels: &label)
    XCTAssertEqual(label, 2)
    for i in 0..<12 { XCTAssertEqual(images[i], (Float(i * 20) / 255 - 0.5) / 0.25, accuracy: 1e-5) }
    // A flip with probability 1 and no shift mirrors each row.
    assembler.assemble(dataset, indices: [0][...], augmentation: Augmentation(shift: 0, horizontalFlip: 1), seed: 1, epoch: 0, images: images, labels: &label)
    for y in 0..<3 { for x in 0..<4 { XCTAssertEqual(images[y * 4 + x], (Float((y * 4 + 3 - x) * 20) / 255 - 0.5) / 0.25, accuracy: 1e-5) } }
    // Shifts keep the image's pixels (moved) and pad with normalised zero; the same
    // (seed, epoch, example) gives the same batch, another epoch another one.
    let shift = Augmentation(shift: 2, horizontalFlip: 0.5)
    var draws = Set<[Float]>()
    for epoch in 0..<20 {
      assembler.assemble(dataset, indices: [0][...], augmentation: shift, seed: 1, epoch: epoch, images: images, labels: &label)
      let first = images.array()
      assembler.assemble(dataset, indices: [0][...], augmentation: shift, seed: 1, epoch: epoch, images: images, labels: &label)
      XCTAssertEqual(images.array(), first)
      XCTAssert(first.allSatisfy { value in (0..<12).contains { abs((Float($0 * 20) / 255 - 0.5) / 0.25 - value) < 1e-5 } || abs(value + 2) < 1e-5 })
      draws.insert(first)
    }
    XCTAssertGreaterThan(draws.count, 5, "epochs draw different transforms")
  }
}
