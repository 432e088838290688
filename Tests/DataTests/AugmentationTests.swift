import Data
import Foundation
import QuorumTestSupport
import Tensor
import XCTest

final class AugmentationTests: XCTestCase {
  let (height, width) = (16, 16)

  /// A centred blob: mass well inside the borders.
  func blob() -> [Float] {
    (0..<(16 * 16)).map { i in
      let (y, x) = (Double(i / 16) - 7.5, Double(i % 16) - 6)
      return Float(200 * exp(-(x * x + y * y) / 8))
    }
  }

  func warped(_ image: [Float], _ warp: Augmentation.Warp) -> [Float] {
    var output = [Float](repeating: -1, count: image.count)
    image.withUnsafeBufferPointer { source in
      output.withUnsafeMutableBufferPointer { destination in
        warpImage(source.baseAddress!, into: destination.baseAddress!, height: height, width: width, channels: 1, warp: warp)
      }
    }
    return output
  }

  func testIdentityWarpAndDoubleFlipsChangeNothing() {
    let image = blob()
    XCTAssertEqual(warped(image, .identity), image)
    let horizontal = Augmentation.Warp(a: (-1, 0, 0, 1), translation: (0, 0))
    let vertical = Augmentation.Warp(a: (1, 0, 0, -1), translation: (0, 0))
    XCTAssertNotEqual(warped(image, horizontal), image)
    XCTAssertEqual(warped(warped(image, horizontal), horizontal), image)
    XCTAssertEqual(warped(warped(image, vertical), vertical), image)
    // A horizontal flip mirrors each row.
    let flipped = warped(image, horizontal)
    for y in 0..<height { for x in 0..<width { XCTAssertEqual(flipped[y * width + x], image[y * width + width - 1 - x]) } }
  }

  func testRotationKeepsMassAndScaleShearAreApplied() {
    let image = blob()
    let mass = image.reduce(0, +)
    for degrees in [10.0, 45, 90, 170] {
      let r = degrees * .pi / 180
      let rotation = Augmentation.Warp(a: (cos(r), sin(r), -sin(r), cos(r)), translation: (0, 0))
      let output = warped(image, rotation)
      XCTAssertEqual(output.reduce(0, +), mass, accuracy: mass * 0.03, "rotation by \(degrees)° keeps the mass")
      XCTAssertNotEqual(output, image)
    }
    // Scaling up by 1.25 (sampling at 0.8 of the distance) spreads the blob over 1.25²
    // times the area, still inside the frame: the mass grows by ≈ 1.5625.
    let zoom = Augmentation.Warp(a: (0.8, 0, 0, 0.8), translation: (0, 0))
    XCTAssertEqual(warped(image, zoom).reduce(0, +) / mass, 1.5625, accuracy: 0.05)
    // A shear moves the top and bottom rows in opposite directions and keeps the mass.
    let shear = Augmentation.Warp(a: (1, -0.3, 0, 1), translation: (0, 0))
    XCTAssertEqual(warped(image, shear).reduce(0, +), mass, accuracy: mass * 0.03)
    // An integer shift moves the blob by whole pixels.
    let shifted = warped(image, Augmentation.Warp(a: (1, 0, 0, 1), translation: (2, 1)))
    XCTAssertEqual(shifted[(8 + 1) * width + 6 + 2], image[8 * width + 6], accuracy: 1e-4)
  }

  /// Elastic distortion: a zero field changes nothing; a drawn field is smooth (neighbours
  /// differ by far less than the field's size) and moves pixels while keeping the mass.
  func testElasticDistortionIsSmoothAndKeepsMass() {
    let image = blob()
    let zero = [Float](repeating: 0, count: 2 * 256)
    var output = [Float](repeating: 0, count: 256)
    image.withUnsafeBufferPointer { source in
      zero.withUnsafeBufferPointer { field in
        output.withUnsafeMutableBufferPointer {
          warpImage(source.baseAddress!, into: $0.baseAddress!, height: 16, width: 16, channels: 1, warp: .identity, displacement: field.baseAddress!)
        }
      }
    }
    XCTAssertEqual(output, image)
    let dataset = ImageDataset(pixels: image.map { UInt8($0) }, labels: [0], height: 16, width: 16, channels: 1, classes: 1)
    let assembler = BatchAssembler(mean: [0], std: [1], threads: 1)
    let elastic = Augmentation(elasticAlpha: 3, elasticSigma: 3)
    let images = Tensor(shape: [1, 16, 16, 1])
    var label: Int32 = 0
    assembler.assemble(dataset, indices: [0][...], augmentation: elastic, seed: 1, epoch: 0, images: images, labels: &label)
    let distorted = images.array()
    // The assembler's output is pixel/255 (mean 0, std 1).
    let undistorted = dataset.pixels.map { Float($0) / 255 }
    XCTAssertNotEqual(distorted, undistorted)
    let mass = undistorted.reduce(0, +)
    XCTAssertEqual(distorted.reduce(0, +), mass, accuracy: mass * 0.1)
    assembler.assemble(dataset, indices: [0][...], augmentation: elastic, seed: 1, epoch: 0, images: images, labels: &label)
    XCTAssertEqual(images.array(), distorted, "deterministic per (seed, epoch, example)")
    // The field itself: smooth and of the requested scale.
    var field = [Float](repeating: 0, count: 2 * 256), temporary = [Float](repeating: 0, count: 2 * 256)
    field.withUnsafeMutableBufferPointer { f in
      temporary.withUnsafeMutableBufferPointer { t in
        Augmentation(elasticAlpha: 3, elasticSigma: 3).elasticFieldForTesting(seed: 1, example: 0, height: 16, width: 16, field: f.baseAddress!, temporary: t.baseAddress!)
      }
    }
    let largest = field.map(abs).max()!
    var steps: [Float] = []
    for y in 0..<16 {
      for x in 0..<15 { steps.append(abs(field[y * 16 + x + 1] - field[y * 16 + x])) }
    }
    XCTAssertGreaterThan(largest, 0.05)
    XCTAssertLessThan(steps.max()!, largest * 0.5, "neighbouring displacements are close")
  }

  func testDrawsAreDeterministicAndDifferPerEpoch() {
    let dataset = ImageDataset(pixels: blob().map { UInt8($0) }, labels: [0], height: 16, width: 16, channels: 1, classes: 1)
    let assembler = BatchAssembler(mean: [0], std: [1], threads: 2)
    let images = Tensor(shape: [1, 16, 16, 1])
    var label: Int32 = 0
    let full = Augmentation(shift: 2, horizontalFlip: 0.5, verticalFlip: 0.5, rotation: 15, scale: 0.1, shear: 10, erasing: 0.5)
    XCTAssertNoThrow(try full.validate())
    var outputs = Set<[Float]>()
    var erased = 0
    for epoch in 0..<24 {
      assembler.assemble(dataset, indices: [0][...], augmentation: full, seed: 3, epoch: epoch, images: images, labels: &label)
      let first = images.array()
      assembler.assemble(dataset, indices: [0][...], augmentation: full, seed: 3, epoch: epoch, images: images, labels: &label)
      XCTAssertEqual(images.array(), first, "same (seed, epoch, example), same image")
      outputs.insert(first)
      // Erasing zeroes a rectangle of at least 2 % of the image inside the blob's box.
      if first.filter({ $0 == 0 }).count > blob().filter({ UInt8($0) == 0 }).count + 4 { erased += 1 }
    }
    XCTAssertEqual(outputs.count, 24)
    // Erased rectangles land anywhere, not always in the corner.
    let plain = Augmentation(erasing: 1)
    var corners = Set<Int>()
    for example in 0..<40 {
      let many = ImageDataset(pixels: [UInt8](repeating: 200, count: 256), labels: [0], height: 16, width: 16, channels: 1, classes: 1)
      assembler.assemble(many, indices: [0][...], augmentation: plain, seed: UInt64(example), epoch: 0, images: images, labels: &label)
      let values = images.array()
      if let first = values.firstIndex(of: 0) { corners.insert(first) }
    }
    XCTAssertGreaterThan(corners.count, 10, "erasures start at \(corners.count) different places")
    XCTAssert((4...20).contains(erased), "erasing with p = 0.5 erased \(erased) of 24")
    XCTAssertThrowsError(try Augmentation(rotation: 200).validate()) { XCTAssert("\($0)".contains("rotation")) }
    XCTAssertThrowsError(try Augmentation(erasing: 2).validate()) { XCTAssert("\($0)".contains("erasing")) }
  }
}
