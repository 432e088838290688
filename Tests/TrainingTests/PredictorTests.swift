import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Inference without a Trainer: a trained model's checkpoint, run by a `Predictor`, gives
/// the logits its training run computed, bit for bit (with and without test-time
/// augmentation); data of another shape and a checkpoint of another architecture are
/// refused naming the problem.
final class PredictorTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func testAPredictorReproducesTheTrainingRunsLogits() throws {
    let data = try SmallFashionMNIST.load(training: 160, test: 70)
    for augmentation in [TestTimeAugmentation.none, TestTimeAugmentation(flips: true, shift: 1)] {
      var configuration = SmallFashionMNIST.configuration(epochs: 1)
      configuration.testTimeAugmentation = augmentation
      let output = folder + "/run-\(augmentation.transforms.count)"
      let trainer = try Trainer(configuration: configuration, data: data, backend: CPUBackend(threads: 2), threads: 2, outputFolder: output,
        reporter: ProgressReporter(style: .silent, totalEpochs: 1))
      let result = try trainer.run()
      let predictor = try Predictor(
        checkpoint: output + "/model.safetensors", configuration: configuration.model, expected: "the test's model",
        batchSize: configuration.batchSize, backend: CPUBackend(threads: 2), threads: 2)
      let predicted = try predictor.predict(try XCTUnwrap(data.test), testTimeAugmentation: augmentation)
      XCTAssertEqual(predicted.logits, try XCTUnwrap(result.testLogits), "\(augmentation.transforms.count) transforms")
      XCTAssertEqual(predicted.logits.count, 70 * 10)
    }
  }

  func testOtherShapesAndArchitecturesAreRefused() throws {
    let configuration = MobileNetV2Configuration(width: 0.35)
    let model = try MobileNetV2(configuration, capacity: 4, backend: CPUBackend(threads: 1))
    model.initialize(seed: 1)
    let path = folder + "/model.safetensors"
    try ModelCheckpoint.save(model, description: ModelCheckpoint.Description(configuration: configuration, mean: [0.3], std: [0.3]), to: path)
    XCTAssertThrowsError(
      try Predictor(checkpoint: path, configuration: MobileNetV2Configuration(width: 0.5), expected: "a width-0.5 model", backend: CPUBackend(threads: 1), threads: 1)
    ) { XCTAssert("\($0)".contains(path) && "\($0)".contains("a width-0.5 model"), "\($0)") }
    XCTAssertThrowsError(try Predictor(checkpoint: folder + "/none.safetensors", configuration: configuration, expected: "x", backend: CPUBackend(threads: 1), threads: 1)) {
      XCTAssert("\($0)".contains("no such checkpoint"), "\($0)")
    }
    let predictor = try Predictor(checkpoint: path, configuration: configuration, expected: "x", batchSize: 4, backend: CPUBackend(threads: 1), threads: 1)
    let colour = ImageDataset(pixels: Array(repeating: 0, count: 2 * 28 * 28 * 3), labels: [0, 1], height: 28, width: 28, channels: 3, classes: 10)
    XCTAssertThrowsError(try predictor.predict(colour)) { XCTAssert("\($0)".contains("28×28×3"), "\($0)") }
  }
}
