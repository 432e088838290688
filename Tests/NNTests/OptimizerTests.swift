import NN
import Tensor
import XCTest

final class OptimizerTests: XCTestCase {
  let backend = CPUBackend(threads: 1)

  func parameter(_ values: [Float], gradient: [Float], decays: Bool = true) -> Parameter {
    let p = Parameter(name: "p", shape: [values.count], decays: decays, backend: backend)
    for i in values.indices {
      p.value[i] = values[i]
      p.gradient[i] = gradient[i]
    }
    return p
  }

  /// torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), two steps
  /// with gradient 1 at w = 1: v₁ = 1.01, w₁ = 1 − 0.1·(1.01 + 0.9·1.01) = 0.8081;
  /// v₂ = 0.9·1.01 + (1 + 0.008081) = 1.917081, w₂ = w₁ − 0.1·(1.008081 + 0.9·1.917081).
  func testSGDNesterovWithWeightDecayMatchesPyTorch() {
    let p = parameter([1], gradient: [1])
    let sgd = SGD(parameters: [p], momentum: 0.9, nesterov: true, weightDecay: 0.01, backend: backend)
    sgd.step([p], learningRate: 0.1)
    XCTAssertEqual(p.value[0], 0.8081, accuracy: 1e-6)
    sgd.step([p], learningRate: 0.1)
    XCTAssertEqual(p.value[0], 0.8081 - 0.1 * (1.008081 + 0.9 * 1.917081), accuracy: 1e-6)
    // Batch-norm parameters and biases never decay.
    let bias = parameter([1], gradient: [0], decays: false)
    SGD(parameters: [bias], momentum: 0.9, nesterov: true, weightDecay: 0.5, backend: backend).step([bias], learningRate: 0.1)
    XCTAssertEqual(bias.value[0], 1)
  }

  /// AdamW's first step moves every weight by lr (the bias-corrected m/√v is ±1), after
  /// decoupled decay w·(1 − lr·λ).
  func testAdamWFirstStepAndDecoupledDecay() {
    let p = parameter([2, -3], gradient: [0.5, -4])
    let adam = AdamW(parameters: [p], weightDecay: 0.1, backend: backend)
    adam.step([p], learningRate: 0.01)
    XCTAssertEqual(p.value[0], 2 * (1 - 0.001) - 0.01, accuracy: 1e-5)
    XCTAssertEqual(p.value[1], -3 * (1 - 0.001) + 0.01, accuracy: 1e-5)
    XCTAssertEqual(adam.counters["adam.steps"], 1)
  }

  func testGradientClippingScalesToTheMaximumNorm() {
    let a = parameter([0, 0], gradient: [3, 0]), b = parameter([0], gradient: [4])
    let clipper = GradientClipper([a, b], maximumNorm: 1, backend: backend)
    clipper.clip()
    XCTAssertEqual(clipper.norm, 5, accuracy: 1e-6)
    XCTAssertEqual(a.gradient[0], 0.6, accuracy: 1e-5)
    XCTAssertEqual(b.gradient[0], 0.8, accuracy: 1e-5)
    let loose = GradientClipper([a, b], maximumNorm: 10, backend: backend)
    loose.clip()
    XCTAssertEqual(loose.norm, 1, accuracy: 1e-5)
    XCTAssertEqual(b.gradient[0], 0.8, accuracy: 1e-5, "below the maximum nothing changes")
  }

  /// torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=100, pct_start=0.15):
  /// starts at 0.004, peaks at step 14, ends at 4e-7.
  func testOneCycleMatchesPyTorchEndpoints() {
    let schedule = LearningRateSchedule.oneCycle(warmupFraction: 0.15)
    func rate(_ step: Int) -> Double { schedule.learningRate(peak: 0.1, step: step, totalSteps: 100, stepsPerEpoch: 10, plateauFactor: 1) }
    XCTAssertEqual(rate(0), 0.004, accuracy: 1e-12)
    XCTAssertEqual(rate(14), 0.1, accuracy: 1e-12)
    XCTAssertEqual(rate(99), 4e-7, accuracy: 1e-12)
    XCTAssert(rate(7) > rate(3) && rate(50) < rate(20))
  }

  func testWarmupCosineStepAndPlateauSchedules() {
    let cosine = LearningRateSchedule.warmupCosine(warmupFraction: 0.1)
    XCTAssertEqual(cosine.learningRate(peak: 1, step: 0, totalSteps: 100, stepsPerEpoch: 10, plateauFactor: 1), 0.1, accuracy: 1e-12)
    XCTAssertEqual(cosine.learningRate(peak: 1, step: 10, totalSteps: 100, stepsPerEpoch: 10, plateauFactor: 1), 1, accuracy: 1e-12)
    XCTAssertEqual(cosine.learningRate(peak: 1, step: 55, totalSteps: 100, stepsPerEpoch: 10, plateauFactor: 1), 0.5, accuracy: 1e-12)
    let step = LearningRateSchedule.step(epochs: 2, factor: 0.1)
    XCTAssertEqual(step.learningRate(peak: 1, step: 39, totalSteps: 100, stepsPerEpoch: 10, plateauFactor: 1), 0.1, accuracy: 1e-12)
    var plateau = PlateauState()
    for metric in [0.5, 0.6, 0.6, 0.59] { plateau.record(metric, factor: 0.1, patience: 1) }
    XCTAssertEqual(plateau.factor, 0.1, accuracy: 1e-12)
    XCTAssertEqual(plateau.best, 0.6)
  }
}
