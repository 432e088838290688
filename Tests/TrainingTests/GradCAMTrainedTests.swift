import Data
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Grad-CAM on a model that has learnt to find a square: the map points at the square.
final class GradCAMTrainedTests: XCTestCase {
  /// Dim noise; class 1 has one bright 8×8 square anywhere, class 0 none.
  func squares(_ count: Int, seed: UInt64) -> (data: ImageDataset, squareTop: [Int], squareLeft: [Int]) {
    var state = seed
    func next(_ bound: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(bound))
    }
    var pixels = [UInt8](repeating: 0, count: count * 28 * 28)
    var labels: [Int32] = []
    var tops: [Int] = []
    var lefts: [Int] = []
    for n in 0..<count {
      for i in 0..<(28 * 28) { pixels[n * 784 + i] = UInt8(next(40)) }
      let label = n % 2
      let (top, left) = (next(20), next(20))
      if label == 1 { for y in top..<(top + 8) { for x in left..<(left + 8) { pixels[n * 784 + y * 28 + x] = 255 } } }
      labels.append(Int32(label))
      tops.append(top)
      lefts.append(left)
    }
    return (ImageDataset(pixels: pixels, labels: labels, height: 28, width: 28, channels: 1, classes: 2), tops, lefts)
  }

  func testTheHeatMapPointsAtTheSquare() throws {
    var configuration = TrainerTests.memorising(epochs: 15)
    // The cifar preset keeps a 4×4 map to its last block, where Grad-CAM is sharp. (With the
    // imagenet preset the deepest map of 4×4 on 28×28 images is block 5 of 17: the square
    // was the hottest part in 14 of 20 images there, against 20 of 20 here.)
    configuration.model = MobileNetV2Configuration(preset: .cifar, width: 0.35, classes: 2, dropout: 0)
    let trainer = try Trainer(
      configuration: configuration, data: TrainingData(training: squares(400, seed: 1).data), backend: CPUBackend(threads: 2), threads: 2,
      outputFolder: nil, reporter: ProgressReporter(style: .silent, totalEpochs: configuration.epochs))
    _ = try trainer.run()
    let held = squares(40, seed: 2)
    let accuracy = trainer.evaluate(held.data).metrics.accuracy
    XCTAssertGreaterThanOrEqual(accuracy, 0.95, "the model has learnt where the square is")
    let cam = GradCAM(model: trainer.model)
    let (mean, std) = (trainer.description.mean[0], trainer.description.std[0])
    // Each cell of the map covers a patch of the image: the cells over the square should
    // be hotter, on average, than the cells elsewhere.
    var hotter = 0
    var normalised = 0
    for n in 0..<held.data.count where held.data.labels[n] == 1 {
      let image = Tensor(shape: [784])
      for i in 0..<784 { image[i] = (Float(held.data.pixels[n * 784 + i]) / 255 - mean) / std }
      let map = cam.heatMap(image, classIndex: Int(held.data.labels[n]))
      if map.values.max() == 1 && map.values.allSatisfy({ (0...1).contains($0) }) { normalised += 1 }
      let (top, left) = (held.squareTop[n], held.squareLeft[n])
      var (over, elsewhere): ([Float], [Float]) = ([], [])
      for cell in map.values.indices {
        let (y0, x0) = ((cell / map.width) * 28 / map.height, (cell % map.width) * 28 / map.width)
        let (y1, x1) = (((cell / map.width) + 1) * 28 / map.height, ((cell % map.width) + 1) * 28 / map.width)
        let overlaps = y0 < top + 8 && top < y1 && x0 < left + 8 && left < x1
        if overlaps { over.append(map.values[cell]) } else { elsewhere.append(map.values[cell]) }
      }
      if over.reduce(0, +) / Float(over.count) > elsewhere.reduce(0, +) / Float(elsewhere.count) { hotter += 1 }
    }
    XCTAssertGreaterThanOrEqual(min(cam.model.blockOutput(cam.block).geometry.height, 28), 4)
    XCTAssertEqual(normalised, 20, "every map lies in 0…1 with a largest value of 1")
    XCTAssertGreaterThanOrEqual(hotter, 17, "the square is hotter than the rest in \(hotter) of 20 images")
  }
}
