import NN
import QuorumTestSupport
import Tensor
import XCTest

final class MobileNetV2Tests: XCTestCase {
  let backend = CPUBackend(threads: 2)

  /// torchvision.models.mobilenet_v2(num_classes=10, width_mult=w) with a 1-channel stem
  /// (scripts/bench/mobilenet_reference.py prints these); strides do not change counts.
  func testParameterCountsEqualTorchvisionForEveryWidthAndPreset() throws {
    let torchvision: [Double: Int] = [0.35: 408_650, 0.5: 700_202, 0.75: 1_367_802, 1.0: 2_236_106, 1.4: 4_332_842]
    for preset in MobileNetV2Configuration.Preset.allCases {
      for (width, expected) in torchvision {
        let model = try MobileNetV2(MobileNetV2Configuration(preset: preset, width: width), capacity: 2, backend: backend)
        XCTAssertEqual(model.parameterCount, expected, "\(preset) width \(width)")
      }
    }
  }

  func testOutputShapesAndFeatureMapsOfBothPresets() throws {
    for (preset, side) in [(MobileNetV2Configuration.Preset.imagenet, 1), (.cifar, 4)] {
      for width in [0.35, 0.5, 1.0, 1.4] {
        let configuration = MobileNetV2Configuration(preset: preset, width: width, classes: 7)
        let model = try MobileNetV2(configuration, capacity: 3, backend: backend)
        model.initialize(seed: 1)
        XCTAssertEqual(model.featureGeometry.height, side, "\(preset) 28×28 → \(side)×\(side)")
        XCTAssertEqual(model.featureGeometry.channels, configuration.lastChannels)
        XCTAssertEqual(configuration.lastChannels, width > 1 ? 1792 : 1280)
        let logits = model.forward(randomTensor([3 * 28 * 28], seed: 2), batch: 3, training: false)
        XCTAssertEqual(logits.shape, [3, 7])
        XCTAssert(logits.array(count: 21).allSatisfy { $0.isFinite })
      }
    }
  }

  func testOverriddenStridesAndInputChannelsChangeGeometryNotNames() throws {
    let configuration = MobileNetV2Configuration(
      preset: .imagenet, width: 0.5, inputChannels: 3, classes: 5, imageHeight: 32, imageWidth: 32, stemStride: 1,
      stageStrides: [1, 1, 1, 2, 1, 2, 1])
    let model = try MobileNetV2(configuration, capacity: 2, backend: backend)
    XCTAssertEqual(model.featureGeometry.height, 8)
    XCTAssertEqual(model.parameters.first?.checkpointShape, [16, 3, 3, 3])
    XCTAssertEqual(model.parameters.last?.name, "classifier.1.bias")
    XCTAssertThrowsError(try MobileNetV2(MobileNetV2Configuration(stageStrides: [1, 2]), capacity: 2, backend: backend)) {
      XCTAssert("\($0)".contains("stage strides"), "\($0)")
    }
  }

  /// The inference-only plan shares three buffers and normalises in place; it must
  /// compute what a training model computes in evaluation mode (to the last bits: the
  /// buffers sit at other addresses, and OpenBLAS's blocking may then sum differently).
  func testInferenceOnlyModelGivesTheSameLogitsAsATrainingModel() throws {
    for preset in MobileNetV2Configuration.Preset.allCases {
      for width in [0.35, 1.0] {
        let configuration = MobileNetV2Configuration(preset: preset, width: width)
        let training = try MobileNetV2(configuration, capacity: 5, backend: backend)
        let inference = try MobileNetV2(configuration, capacity: 5, backend: backend, inferenceOnly: true)
        training.initialize(seed: 8)
        let images = randomTensor([5 * 28 * 28], seed: 9)
        training.forward(images, batch: 5, training: true)  // non-trivial running statistics
        for (source, destination) in zip(training.parameters, inference.parameters) { destination.value.copy(from: source.value) }
        for (source, destination) in zip(training.norms, inference.norms) {
          destination.runningMean.value.copy(from: source.runningMean.value)
          destination.runningVariance.value.copy(from: source.runningVariance.value)
        }
        let expected = training.forward(images, batch: 5, training: false).array(count: 50)
        let scale = expected.map(abs).max()!
        for (batch, values) in [(5, inference.forward(images, batch: 5, training: false).array(count: 50)),
                                (3, inference.forward(images, batch: 3, training: false).array(count: 30))] {
          for (ours, reference) in zip(values, expected) {
            XCTAssertEqual(ours, reference, accuracy: 1e-5 * scale, "\(preset) width \(width) batch \(batch)")
          }
        }
      }
    }
  }

  func testInitialisationFollowsTorchvisionAndIsSeeded() throws {
    let model = try MobileNetV2(MobileNetV2Configuration(width: 1.0), capacity: 2, backend: backend)
    model.initialize(seed: 5)
    let expand = model.parameters.first { $0.name == "features.2.conv.0.0.weight" }!  // [96, 16, 1, 1]
    let values = expand.value.array()
    let std = (values.map { Double($0 * $0) }.reduce(0, +) / Double(values.count)).squareRoot()
    XCTAssertEqual(std, (2.0 / 96).squareRoot(), accuracy: 0.01, "Kaiming normal, fan-out")
    let classifier = model.parameters.first { $0.name == "classifier.1.weight" }!.value.array()
    let classifierStd = (classifier.map { Double($0 * $0) }.reduce(0, +) / Double(classifier.count)).squareRoot()
    XCTAssertEqual(classifierStd, 0.01, accuracy: 0.001)
    let again = try MobileNetV2(MobileNetV2Configuration(width: 1.0), capacity: 4, backend: CPUBackend(threads: 1))
    again.initialize(seed: 5)
    XCTAssertEqual(again.parameters.map { $0.value.array() }, model.parameters.map { $0.value.array() })
  }
}
