import NN
import QuorumTestSupport
import Tensor
import XCTest

/// The evaluation-mode backward pass that Grad-CAM rests on, and the heat maps.
final class GradCAMTests: XCTestCase {
  let backend = CPUBackend(threads: 2)

  /// A model with trained-looking running statistics and a classifier that is not tiny.
  func model(_ preset: MobileNetV2Configuration.Preset) throws -> MobileNetV2 {
    let model = try MobileNetV2(MobileNetV2Configuration(preset: preset, width: 0.35), capacity: 4, backend: backend)
    model.initialize(seed: 3)
    for step in 0..<3 { model.forward(randomTensor([4 * 28 * 28], seed: 40 + UInt64(step)), batch: 4, training: true) }
    let weights = model.classifier.weight.value
    for i in 0..<weights.capacity { weights[i] *= 100 }
    return model
  }

  /// ∂logit/∂image of the evaluation-mode forward against central finite differences.
  func testEvaluationModeBackwardMatchesFiniteDifferences() throws {
    for preset in MobileNetV2Configuration.Preset.allCases {
      let model = try model(preset)
      let image = randomTensor([28 * 28], seed: 5)
      let target = 3
      let logitGradient = Tensor(shape: [10])
      logitGradient[target] = 1
      let inputGradient = Tensor(shape: [28 * 28])
      model.forward(image, batch: 1, training: false)
      model.backward(logitGradient: logitGradient, batch: 1, inputGradient: inputGradient, training: false)
      checkGradient(
        "\(preset)", variable: image, analytic: inputGradient.array(count: 28 * 28), indices: sampledIndices(28 * 28, count: 40),
        step: 1e-2, relative: 2e-2, absolute: 2e-3, allowedOutliers: 2
      ) { Double(model.forward(image, batch: 1, training: false)[target]) }
    }
  }

}
