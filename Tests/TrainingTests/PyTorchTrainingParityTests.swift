import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Five steps of the reference recipe through Quorum's `Trainer` against PyTorch's float64
/// autograd and `torch.optim.SGD` (Fixtures/make_pytorch_training_parity.py): what builds
/// up over a run (momentum, the running statistics, the schedule) and the shapes the
/// one-step test (PyTorchParityTests) does not reach: the imagenet preset's stride-2 stem
/// on 28×28 with its 2×2 and 1×1 maps, and a batch of 127 in buffers planned for 128.
/// Weight decay groups, Nesterov momentum, OneCycle's first five learning rates (through
/// the peak), label smoothing and dropout with Quorum's own masks are all in the step.
final class PyTorchTrainingParityTests: XCTestCase {
  static let (batch, capacity, steps, totalSteps) = (127, 128, 5, 100)
  /// A ragged last batch: 5 examples in buffers planned for 128.
  static let raggedBatch = 5

  /// What one run of the five steps leaves, every tensor in checkpoint layout.
  struct Run {
    var losses: [Double] = []
    var learningRates: [Double] = []
    /// Each step's momentum (nil: the optimizer's own 0.9).
    var momenta: [Double?] = []
    /// runningStatistics[k][name]: after step k + 1.
    var runningStatistics: [[String: [Float]]] = []
    /// updateNorms[k][name]: ‖w − w₀‖ after step k + 1.
    var updateNorms: [[String: Float]] = []
    var updates: [String: [Float]] = [:]
  }

  func fixture() throws -> Safetensors {
    let url = try XCTUnwrap(
      Bundle.module.url(forResource: "pytorch_training_parity", withExtension: "safetensors", subdirectory: "Fixtures"))
    return try Safetensors.read(url.path)
  }

  /// The five steps on `threads` threads; `cycled`: with one-cycle's momentum cycling;
  /// on the first `batch` examples.
  func run(_ file: Safetensors, threads: Int, cycled: Bool = false, batch examples: Int = batch) throws -> Run {
    let metadata = file.metadata
    let pixels = try file.floats("pixels").map { UInt8($0) }
    let labels = try file.floats("labels").map { Int32($0) }
    XCTAssertEqual(labels.count, Self.batch)
    let dataset = ImageDataset(pixels: pixels, labels: labels, height: 28, width: 28, channels: 1, classes: 10)
    var configuration = TrainingConfiguration(
      model: MobileNetV2Configuration(
        preset: .imagenet, width: 0.5, inputChannels: 1, classes: 10, imageHeight: 28, imageWidth: 28,
        dropout: Float(try XCTUnwrap(metadata["dropout"]))!))
    configuration.batchSize = Self.capacity
    configuration.seed = UInt64(try XCTUnwrap(metadata["seed"]))!
    configuration.augmentation = .none
    configuration.labelSmoothing = Float(try XCTUnwrap(metadata["label_smoothing"]))!
    configuration.learningRate = Double(try XCTUnwrap(metadata["peak_learning_rate"]))!
    configuration.momentumCycle = cycled ? MomentumCycle() : nil
    let trainer = try Trainer(
      configuration: configuration, data: TrainingData(training: dataset), backend: CPUBackend(threads: threads), threads: threads,
      outputFolder: nil, prefetch: false, normalization: (mean: [0.5], std: [0.25]))
    let model = trainer.model
    try ModelCheckpoint.load(model, from: file, prefix: "weights/")
    func weights() -> [String: [Float]] {
      Dictionary(uniqueKeysWithValues: model.parameters.map {
        ($0.name, ModelCheckpoint.toCheckpointLayout(model.backend.download($0.value), of: $0))
      })
    }
    let initial = weights()
    var run = Run()
    let batch = Array(0..<examples)[...]
    for step in 0..<Self.steps {
      let learningRate = configuration.schedule.learningRate(
        peak: configuration.learningRate, step: step, totalSteps: Self.totalSteps, stepsPerEpoch: Self.totalSteps, plateauFactor: 1)
      let momentum = configuration.momentumCycle.flatMap {
        configuration.schedule.cycledMomentum(step: step, totalSteps: Self.totalSteps, cycle: $0)
      }
      run.learningRates.append(learningRate)
      run.momenta.append(momentum)
      run.losses.append(
        trainer.trainStep(batch, epoch: 0, step: step, learningRate: Float(learningRate), momentum: momentum.map(Float.init)))
      var statistics: [String: [Float]] = [:]
      for norm in model.norms {
        for buffer in [norm.runningMean, norm.runningVariance] { statistics[buffer.name] = model.backend.download(buffer.value) }
      }
      run.runningStatistics.append(statistics)
      let now = weights()
      run.updates = now.mapValues { _ in [] }
      for (name, values) in now { run.updates[name] = zip(values, initial[name]!).map { $0 - $1 } }
      run.updateNorms.append(run.updates.mapValues { Float(sqrt($0.reduce(0) { $0 + Double($1) * Double($1) })) })
    }
    return run
  }

  /// How far PyTorch's own float32 lands from its float64 (the fixture's `float32/envelope/`:
  /// the largest distance of seven float32 runs, from the same weights and from six nudged
  /// by one ulp). MobileNetV2's 34 ReLU6 layers put some of their inputs closer to a kink
  /// than float32 rounds, a gate that flips moves what follows it, and the steps carry it on
  /// (after one step PyTorch's float32 update norms are up to 0.5 % of the largest away from
  /// float64, after five up to 10 %). Quorum may be as far as twice that envelope, plus four
  /// times the spread of its own summation orders (1, 2 and 3 threads) and a small relative
  /// tolerance: an engine no further from exact arithmetic than PyTorch passes; a wrong
  /// formula, mask, schedule or momentum moves every value alike and lands further.
  struct Allowance {
    let reference: [Float]
    let envelope: [Float]
    let spread: Float
    func at(_ index: Int, relative: Float) -> Float {
      2 * envelope[index] + relative * abs(reference[index]) + spread + 1e-7
    }
  }

  /// Each step's learning rate, momentum and loss, and every parameter's update norm after
  /// every step, of the fixture's run at `prefix` ("", "cycled/" or "ragged/").
  func checkSteps(_ file: Safetensors, prefix: String) throws -> (runs: [Run], names: [String]) {
    let cycled = prefix == "cycled/"
    let examples = prefix == "ragged/" ? Self.raggedBatch : Self.batch
    let runs = try [2, 1, 3].map { try run(file, threads: $0, cycled: cycled, batch: examples) }
    let ours = runs[0]
    func spread(_ values: (Run) -> [Float]) -> Float {
      4 * runs.dropFirst().map { other in zip(values(ours), values(other)).map { abs($0 - $1) }.max() ?? 0 }.max()!
    }
    let metadata = file.metadata
    let names = try XCTUnwrap(metadata["parameters"]).split(separator: ",").map(String.init)
    XCTAssertEqual(Set(names), Set(ours.updates.keys), "the same parameters")
    let referenceNorms = try file.floats(prefix + "update_norms", shape: [Self.steps, names.count])
    let envelopeNorms = try file.floats("float32/envelope/" + prefix + "update_norms", shape: [Self.steps, names.count])
    for step in 0..<Self.steps {
      let k = step + 1
      func value(_ key: String) throws -> Double { Double(try XCTUnwrap(metadata[key], key))! }
      XCTAssertEqual(ours.learningRates[step], try value("lr_\(k)"), accuracy: 1e-12, "learning rate of step \(k)")
      if cycled {
        let momentum = try XCTUnwrap(ours.momenta[step], "step \(k) has no cycled momentum")
        XCTAssertEqual(momentum, try value("cycled/momentum_\(k)"), accuracy: 1e-12, "momentum of step \(k)")
      } else {
        XCTAssertNil(ours.momenta[step])
      }
      let loss = try value(prefix + "loss_\(k)")
      let lossAllowance = 2 * (try value("float32/envelope/" + prefix + "loss_\(k)")) + Double(spread { [Float($0.losses[step])] }) + 1e-4
      XCTAssertEqual(ours.losses[step], loss, accuracy: lossAllowance, "\(prefix)loss of step \(k)")
      let row = Array(referenceNorms[(step * names.count)..<((step + 1) * names.count)])
      let envelope = Array(envelopeNorms[(step * names.count)..<((step + 1) * names.count)])
      for (index, name) in names.enumerated() {
        let allowance = Allowance(reference: row, envelope: envelope, spread: spread { [$0.updateNorms[step][name]!] })
        XCTAssertEqual(
          ours.updateNorms[step][name]!, row[index], accuracy: allowance.at(index, relative: 3e-3),
          "\(prefix)‖\(name) − its start‖ after step \(k)")
      }
    }
    return (runs, names)
  }

  /// Each step's learning rate, loss and running statistics, every parameter's update norm
  /// after every step, and every value of the update after five steps.
  func testFiveRecipeStepsMatchPyTorchFloat64() throws {
    let file = try fixture()
    let (runs, names) = try checkSteps(file, prefix: "")
    let ours = runs[0]
    func spread(_ values: (Run) -> [Float]) -> Float {
      4 * runs.dropFirst().map { other in zip(values(ours), values(other)).map { abs($0 - $1) }.max() ?? 0 }.max()!
    }
    // The running statistics: plain averages of the batch's, far from any kink's reach.
    for step in 0..<Self.steps {
      for (name, values) in ours.runningStatistics[step] {
        assertClose(
          values, try file.floats("after/\(step + 1)/\(name)"), tolerance: 1e-3, rounding: spread { $0.runningStatistics[step][name]! },
          "\(name) after step \(step + 1)")
      }
    }
    for name in names {
      let allowance = Allowance(
        reference: try file.floats("update/" + name), envelope: try file.floats("float32/envelope/update/" + name),
        spread: spread { $0.updates[name]! })
      let values = ours.updates[name]!
      XCTAssertEqual(values.count, allowance.reference.count, name)
      let worst = values.indices.map { abs(values[$0] - allowance.reference[$0]) - allowance.at($0, relative: 3e-3) }.max() ?? 0
      XCTAssertLessThanOrEqual(worst, 0, "\(name)'s update over the five steps: a value beyond its allowance by \(worst)")
    }
  }

  /// The same five steps with one-cycle's momentum cycling (`--cycle-momentum`) against
  /// PyTorch's OneCycleLR with `cycle_momentum=True`: each step's momentum, loss and update
  /// norms. The cycled run must also differ from the plain one by more than the check
  /// allows, or the check could not tell the momentum.
  func testCycledMomentumStepsMatchPyTorchOneCycleLR() throws {
    let file = try fixture()
    let (runs, names) = try checkSteps(file, prefix: "cycled/")
    let plain = try file.floats("update_norms", shape: [Self.steps, names.count])
    let cycled = try file.floats("cycled/update_norms", shape: [Self.steps, names.count])
    let envelope = try file.floats("float32/envelope/cycled/update_norms", shape: [Self.steps, names.count])
    // After the first step: the momentum there is 0.95 against 0.9, which scales every
    // Nesterov update by 1.95/1.9.
    let allowance = Allowance(reference: Array(cycled[0..<names.count]), envelope: Array(envelope[0..<names.count]), spread: 0)
    let effect = names.indices.map { abs(cycled[$0] - plain[$0]) / allowance.at($0, relative: 3e-3) }.max() ?? 0
    XCTAssertGreaterThan(effect, 3, "cycling the momentum moves the first update by less than the check allows")
    XCTAssertEqual(runs.count, 3)
  }

  /// A ragged last batch (5 examples in buffers planned for 128) trains as PyTorch's batch
  /// of 5: batch statistics over the 5 only, the loss their mean, the same five steps.
  func testARaggedBatchOfFiveTrainsLikePyTorchs() throws {
    let file = try fixture()
    let (runs, _) = try checkSteps(file, prefix: "ragged/")
    let ours = runs[0]
    for step in 0..<Self.steps {
      for (name, values) in ours.runningStatistics[step] {
        let spread = 4 * runs.dropFirst().map { zip(values, $0.runningStatistics[step][name]!).map { abs($0 - $1) }.max() ?? 0 }.max()!
        assertClose(values, try file.floats("ragged/after/\(step + 1)/\(name)"), tolerance: 1e-3, rounding: spread, "\(name) after ragged step \(step + 1)")
      }
    }
  }
}
