import Data
import QuorumTestSupport
import Tensor
import XCTest

final class MixingTests: XCTestCase {
  let (batch, height, width, classes) = (6, 8, 8, 5)
  let labels: [Int32] = [0, 1, 2, 3, 4, 0]

  func batchImages() -> Tensor { randomTensor([6 * 8 * 8], seed: 2) }

  func mix(_ mixing: Mixing, images: Tensor, step: Int, targets: Tensor) -> Double? {
    labels.withUnsafeBufferPointer {
      mixing.apply(
        images: images, partner: Tensor(shape: [images.capacity]), labels: $0.baseAddress!, batch: batch, height: height,
        width: width, channels: 1, classes: classes, targets: targets, seed: 7, step: step)
    }
  }

  func testMixupBlendsImagesAndTargetsSumToOne() throws {
    let original = batchImages()
    let images = batchImages()
    let targets = Tensor(shape: [batch, classes])
    let lambda = try XCTUnwrap(mix(Mixing(mixup: 0.4), images: images, step: 3, targets: targets))
    XCTAssert((0...1).contains(lambda))
    let size = height * width
    for n in 0..<batch {
      for i in 0..<size {
        let expected = Float(lambda) * original[n * size + i] + Float(1 - lambda) * original[(batch - 1 - n) * size + i]
        XCTAssertEqual(images[n * size + i], expected, accuracy: 1e-5)
      }
      let row = (0..<classes).map { targets[n * classes + $0] }
      XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-6, "targets of example \(n) sum to one")
      XCTAssertEqual(Double(row[Int(labels[n])]), labels[n] == labels[batch - 1 - n] ? 1 : lambda, accuracy: 1e-6)
    }
    // The same (seed, step) mixes the same way.
    let again = batchImages()
    XCTAssertEqual(mix(Mixing(mixup: 0.4), images: again, step: 3, targets: Tensor(shape: [batch, classes])), lambda)
    XCTAssertEqual(again.array(), images.array())
  }

  func testCutmixPastesABoxAndLambdaIsTheKeptArea() throws {
    for step in 0..<10 {
      let original = batchImages()
      let images = batchImages()
      let targets = Tensor(shape: [batch, classes])
      let lambda = try XCTUnwrap(mix(Mixing(cutmix: 1), images: images, step: step, targets: targets))
      let size = height * width
      var pasted = 0
      for i in 0..<size {
        let own = original[i], other = original[(batch - 1) * size + i]
        XCTAssert(images[i] == own || images[i] == other)
        if images[i] == other && own != other { pasted += 1 }
      }
      XCTAssertEqual(Double(pasted) / Double(size), 1 - lambda, accuracy: 1e-9, "step \(step)")
      XCTAssertEqual((0..<classes).map { targets[$0] }.reduce(0, +), 1, accuracy: 1e-6)
    }
  }

  /// λ ~ Beta(α, α): mean 1/2, variance 1/(4(2α + 1)).
  func testLambdaFollowsTheBetaDistribution() throws {
    for alpha in [0.4, 2.0] {
      var draws: [Double] = []
      for step in 0..<3000 {
        draws.append(try XCTUnwrap(mix(Mixing(mixup: alpha), images: Tensor(shape: [6 * 64]), step: step, targets: Tensor(shape: [batch, classes]))))
      }
      let mean = draws.reduce(0, +) / Double(draws.count)
      let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)
      XCTAssertEqual(mean, 0.5, accuracy: 0.02, "α \(alpha)")
      XCTAssertEqual(variance, 1 / (4 * (2 * alpha + 1)), accuracy: 0.01, "α \(alpha)")
    }
    XCTAssertNil(mix(Mixing(mixup: 0.4, probability: 0), images: batchImages(), step: 1, targets: Tensor(shape: [batch, classes])))
  }
}
