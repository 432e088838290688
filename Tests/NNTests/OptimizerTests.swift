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

  /// torch.optim.lr_scheduler.OneCycleLR(max_lr=0.1, total_steps=40, pct_start=0.15,
  /// cycle_momentum=True, base_momentum=0.85, max_momentum=0.95): the optimizer's momentum
  /// at steps 0, 3, 6, …, 39, printed by PyTorch 2 (`param_groups[0]["momentum"]` before each
  /// step). Other schedules have no cycle.
  func testCycledMomentumIsPyTorchOneCycleLRs() {
    let pytorch = [
      0.95, 0.8845491502812526, 0.8502132911852482, 0.8533763885297821, 0.860099138635988, 0.8698682681810371,
      0.8819379166906423, 0.8953865820268349, 0.9091874758908285, 0.9222869177888269, 0.9336847821823279,
      0.9425108567864806, 0.9480912821586409, 0.95,
    ]
    let schedule = LearningRateSchedule.oneCycle(warmupFraction: 0.15)
    for (index, expected) in pytorch.enumerated() {
      let step = index * 3
      XCTAssertEqual(try XCTUnwrap(schedule.cycledMomentum(step: step, totalSteps: 40)), expected, accuracy: 1e-12, "step \(step)")
    }
    XCTAssertEqual(schedule.cycledMomentum(step: 5, totalSteps: 40, cycle: MomentumCycle(base: 0.8, maximum: 0.8)), 0.8)
    XCTAssertNil(LearningRateSchedule.warmupCosine(warmupFraction: 0.15).cycledMomentum(step: 5, totalSteps: 40))
  }

  /// SGD reads its momentum when the step runs: a step prepared with another momentum
  /// moves the velocity by that one (v ← μ·v + g), and the next one without goes back to
  /// the optimizer's own.
  func testSGDTakesEachStepsMomentum() {
    let parameter = self.parameter([1, 2], gradient: [1, -1], decays: false)
    let sgd = SGD(parameters: [parameter], momentum: 0.9, nesterov: false, weightDecay: 0, backend: backend)
    sgd.prepare(learningRate: 0.1, momentum: 0.5)
    sgd.update([parameter])  // v = g = (1, −1); w = (0.9, 2.1)
    sgd.prepare(learningRate: 0.1, momentum: 0.5)
    sgd.update([parameter])  // v = 0.5·v + g = (1.5, −1.5); w = (0.75, 2.25)
    XCTAssertEqual(parameter.value.array(), [0.75, 2.25])
    sgd.step([parameter], learningRate: 0.1)  // its own 0.9: v = (2.35, −2.35); w = (0.515, 2.485)
    XCTAssertEqual(parameter.value.array()[0], 0.515, accuracy: 1e-6)
    XCTAssertEqual(parameter.value.array()[1], 2.485, accuracy: 1e-6)
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
