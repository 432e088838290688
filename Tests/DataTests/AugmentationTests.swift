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

  /// The random resized crop, read back from ramps: channel 0 is 4x + 2, channel 1 is
  /// 4y + 2, so each output row and column is linear and its slope and offset give the
  /// crop. Every crop lies inside the image with an area share in [a, 1] and an aspect in
  /// 3/4…4/3 (within a pixel's rounding), and crops differ between examples.
  func testResizedCropsAreInsideTheImageOfTheDrawnAreaAndAspect() {
    let side = 32
    var pixels: [UInt8] = []
    for y in 0..<side { for x in 0..<side { pixels += [UInt8(4 * x + 2), UInt8(4 * y + 2), 100] } }
    let count = 64
    let dataset = ImageDataset(
      pixels: [[UInt8]](repeating: pixels, count: count).flatMap { $0 }, labels: [Int32](repeating: 0, count: count), height: side,
      width: side, channels: 3, classes: 1)
    let assembler = BatchAssembler(mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255], threads: 2)
    let images = Tensor(shape: [count, side, side, 3])
    var labels = [Int32](repeating: 0, count: count)
    let crop = Augmentation(resizedCrop: 0.3)
    XCTAssertNoThrow(try crop.validate())
    assembler.assemble(dataset, indices: Array(0..<count)[...], augmentation: crop, seed: 5, epoch: 0, images: images, labels: &labels)
    let values = images.array()
    var widths = Set<Int>()
    for n in 0..<count {
      func at(_ y: Int, _ x: Int, _ c: Int) -> Float { values[((n * side + y) * side + x) * 3 + c] }
      // The source column of output column x: (value − 2)/4.
      let left = (at(0, 0, 0) - 2) / 4, right = (at(0, side - 1, 0) - 2) / 4
      let top = (at(0, 0, 1) - 2) / 4, bottom = (at(side - 1, 0, 1) - 2) / 4
      XCTAssert(left >= -1e-3 && right <= Float(side - 1) + 1e-3 && top >= -1e-3 && bottom <= Float(side - 1) + 1e-3, "crop \(n) leaves the image")
      XCTAssertEqual(at(side / 2, side / 2, 2), 100, accuracy: 1e-3)
      for x in 1..<side {
        XCTAssertEqual(at(3, x, 0) - at(3, x - 1, 0), (right - left) * 4 / Float(side - 1), accuracy: 1e-3, "a row is linear")
      }
      let (w, h) = (Double(right - left) + 1, Double(bottom - top) + 1)
      XCTAssertGreaterThanOrEqual(w * h, 0.3 * Double(side * side) - 1.5 * Double(side), "crop \(n) keeps at least 30 % of the area")
      XCTAssert((0.75 - 0.06...4.0 / 3 + 0.08).contains(w / h), "crop \(n)'s aspect \(w / h)")
      widths.insert(Int(w.rounded()))
    }
    XCTAssertGreaterThan(widths.count, 8, "crops of \(widths.count) widths")
  }

  /// Colour jitter at fixed factors follows torchvision's definitions: brightness scales
  /// and clamps, contrast 0 is the grey image's mean everywhere, saturation 0 is the grey
  /// (luma) image; a grey image's saturation changes nothing. Drawn factors lie in range.
  func testColourJitterFollowsTorchvisionsDefinitions() {
    let colours: [Float] = [10, 200, 30, 250, 250, 250, 0, 0, 0, 100, 50, 25]
    func jittered(_ b: Float, _ c: Float, _ s: Float, _ image: [Float] = colours, channels: Int = 3) -> [Float] {
      var image = image
      image.withUnsafeMutableBufferPointer {
        jitterColours($0.baseAddress!, pixels: $0.count / channels, channels: channels, brightness: b, contrast: c, saturation: s)
      }
      return image
    }
    XCTAssertEqual(jittered(2, 1, 1), colours.map { min($0 * 2, 255) })
    let luma: [Float] = (0..<4).map { (p: Int) -> Float in
      let (r, g, b) = (colours[3 * p], colours[3 * p + 1], colours[3 * p + 2])
      return 0.299 * r + 0.587 * g + 0.114 * b
    }
    let mean = luma.reduce(0, +) / 4
    for value in jittered(1, 0, 1) { XCTAssertEqual(value, mean, accuracy: 1e-3) }
    let grey = jittered(1, 1, 0)
    for p in 0..<4 { for c in 0..<3 { XCTAssertEqual(grey[3 * p + c], luma[p], accuracy: 1e-3) } }
    XCTAssertEqual(jittered(1, 1, 0, [10, 90, 200], channels: 1), [10, 90, 200])

    // Through the assembler: one brightness factor per image, within 1 ± 0.4.
    let dataset = ImageDataset(pixels: [UInt8](repeating: 100, count: 16 * 3 * 40), labels: [Int32](repeating: 0, count: 40), height: 4, width: 4, channels: 3, classes: 1)
    let assembler = BatchAssembler(mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255], threads: 1)
    let images = Tensor(shape: [40, 4, 4, 3])
    var labels = [Int32](repeating: 0, count: 40)
    assembler.assemble(
      dataset, indices: Array(0..<40)[...], augmentation: Augmentation(brightness: 0.4), seed: 1, epoch: 0, images: images, labels: &labels)
    let values = images.array()
    var factors = Set<Float>()
    for n in 0..<40 {
      let image = values[(n * 48)..<((n + 1) * 48)]
      XCTAssert(image.allSatisfy { $0 == image.first! }, "one factor per image")
      XCTAssert((60 - 1e-3...140 + 1e-3).contains(image.first!), "\(image.first!) is 100 × a factor outside 0.6…1.4")
      factors.insert(image.first!)
    }
    XCTAssertGreaterThan(factors.count, 30)
    XCTAssertThrowsError(try Augmentation(resizedCrop: 1.5).validate()) { XCTAssert("\($0)".contains("resized crop")) }
    XCTAssertThrowsError(try Augmentation(contrast: -1).validate()) { XCTAssert("\($0)".contains("contrast")) }
  }
}
