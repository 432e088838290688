import CUDA
import CUDAEmulator
import Data
import Foundation
import NN
import Tensor
import Training
import XCTest

/// A training step recorded once as a CUDA graph and replayed (`Backend.record`,
/// `StepRecorder`): the replays train bit for bit as the step launched op by op, and read
/// each step's values (the learning rate, Adam's corrections, dropout's and stochastic
/// depth's streams, the batch) as they are at the replay, not as they were at the
/// recording. On the emulated device by default; on a GPU with QUORUM_TEST_DEVICE=cuda:N.
final class CUDAGraphTests: XCTestCase {
  override func setUp() {
    // Every kernel is race-checked in KernelParityTests; here the steps are many.
    quorum_emulator_set_race_check(0)
  }

  override func tearDown() { quorum_emulator_set_race_check(1) }

  /// A replay reads a `DeviceScalar` as it is when the graph runs: an SGD step recorded at
  /// one learning rate and replayed at two others moves the weight by each of them, and a
  /// momentum changed between replays (one-cycle's cycling) is the one the velocity takes.
  func testAReplayReadsTheStepScalarsAsTheyAreAtTheReplay() throws {
    let backend = try TestDevice.backend()
    let weight = backend.makeTensor(shape: [5], values: [1, 2, 3, 4, 5])
    let gradient = backend.makeTensor(shape: [5], values: [1, 1, 1, 1, 1])
    let velocity = backend.makeTensor(shape: [5])
    let scalars = StepScalars(count: 2, backend: backend)  // learning rate, momentum 0
    scalars.set(0, to: 0.5)
    scalars.write()
    let recording = try XCTUnwrap(
      backend.record {
        backend.sgdStep(
          weight: weight, gradient: gradient, velocity: velocity, count: 5, learningRate: scalars[0], momentum: scalars[1], decay: 0,
          nesterov: false)
      })
    try backend.check()
    XCTAssertEqual(backend.download(weight), [1, 2, 3, 4, 5], "recording runs nothing")
    scalars.set(0, to: 0.25)
    scalars.write()
    backend.replay(recording)
    XCTAssertEqual(backend.download(weight), [0.75, 1.75, 2.75, 3.75, 4.75])
    scalars.set(0, to: 0.5)
    scalars.write()
    backend.replay(recording)
    XCTAssertEqual(backend.download(weight), [0.25, 1.25, 2.25, 3.25, 4.25])
    // Momentum 0.5: v = 0.5·1 + 1 = 1.5, the weight moves by 0.5·1.5.
    scalars.set(1, to: 0.5)
    scalars.write()
    backend.replay(recording)
    XCTAssertEqual(backend.download(velocity), [1.5, 1.5, 1.5, 1.5, 1.5])
    XCTAssertEqual(backend.download(weight), [-0.5, 0.5, 1.5, 2.5, 3.5])
    try backend.check()
  }

  /// Eight steps of MobileNetV2 with everything that changes from step to step: AdamW (its
  /// bias corrections), a new learning rate every step, dropout and stochastic depth (their
  /// streams), label smoothing, clipping, the weight average, batches of 14 and 13 (two
  /// shapes), the class weights joining at the second epoch (two more), the batches
  /// assembled on the device. Recorded and replayed, the losses, weights, running
  /// statistics and averages are those of the same steps launched op by op, bit for bit;
  /// and a replayed step launches no kernel from the host, only its graph.
  func testRecordedStepsTrainBitForBitAsStepsLaunchedOpByOp() throws {
    let count = 40
    var pixels = [UInt8](repeating: 0, count: count * 16 * 16)
    for i in pixels.indices { pixels[i] = UInt8((i * 7919 + i / 256 * 31) % 251) }
    // Imbalanced, so that the class weights change the loss when they join.
    let images = ImageDataset(pixels: pixels, labels: (0..<count).map { Int32(min($0 % 6, 3)) }, height: 16, width: 16, channels: 1, classes: 4)
    var configuration = TrainingConfiguration(
      model: MobileNetV2Configuration(width: 0.35, classes: 4, imageHeight: 16, imageWidth: 16, dropout: 0.2, stochasticDepth: 0.3))
    configuration.batchSize = 16
    configuration.optimizer = .adamw
    configuration.weightDecay = 0.05
    configuration.labelSmoothing = 0.1
    configuration.gradientClipNorm = 2
    configuration.emaDecay = 0.9
    configuration.classWeighting = .inverseFrequency
    configuration.reweightFromEpoch = 2
    configuration.augmentation = Augmentation(shift: 2, horizontalFlip: 0.5, erasing: 0.5)
    let sizes = [14, 13, 14, 13, 14, 14, 13, 14]
    func run(recording: Bool) throws -> (trainer: Trainer, losses: [Double], backend: CUDABackend, lastStepLaunches: (kernels: UInt64, graphs: UInt64)) {
      let backend = try TestDevice.backend()
      let trainer = try Trainer(
        configuration: configuration, data: TrainingData(training: images), backend: backend, threads: 1, outputFolder: nil, prefetch: false,
        recordSteps: recording)
      XCTAssert(trainer.holdsImages)
      var losses: [Double] = []
      var launches: (UInt64, UInt64) = (0, 0)
      for (step, size) in sizes.enumerated() {
        let start = (step * 5) % (count - size)
        let before = (quorum_emulator_host_kernel_launches(), quorum_emulator_graph_launches())
        losses.append(
          trainer.trainStep(Array(0..<count)[start..<(start + size)], epoch: step / 4, step: step, learningRate: 0.02 / Float(step + 1)))
        launches = (quorum_emulator_host_kernel_launches() - before.0, quorum_emulator_graph_launches() - before.1)
        try backend.check()
      }
      return (trainer, losses, backend, launches)
    }
    let replayed = try run(recording: true), launched = try run(recording: false)
    // Each shape's first step runs op by op, its second is recorded and replayed, the rest replay.
    XCTAssertEqual(replayed.trainer.replayedSteps, 4)
    XCTAssertEqual(launched.trainer.replayedSteps, 0)
    XCTAssertEqual(replayed.losses.map(\.bitPattern), launched.losses.map(\.bitPattern), "losses \(replayed.losses) and \(launched.losses)")
    XCTAssert(replayed.losses.allSatisfy(\.isFinite))
    func values(_ trainer: Trainer, _ backend: CUDABackend) -> [(String, [UInt32])] {
      let model = trainer.model
      let tensors = model.parameters.map { ($0.name, $0.value) }
        + model.norms.flatMap { [($0.runningMean.name, $0.runningMean.value), ($0.runningVariance.name, $0.runningVariance.value)] }
        + (trainer.average?.state ?? [])
      return tensors.map { ($0.0, backend.download($0.1).map(\.bitPattern)) }
    }
    let (a, b) = (values(replayed.trainer, replayed.backend), values(launched.trainer, launched.backend))
    XCTAssertEqual(a.count, b.count)
    XCTAssertGreaterThan(a.count, 100)
    for (x, y) in zip(a, b) { XCTAssertEqual(x.1, y.1, x.0) }
    if TestDevice.isEmulated {
      XCTAssertEqual(replayed.lastStepLaunches.kernels, 0, "a replayed step launches no kernel from the host")
      XCTAssertEqual(replayed.lastStepLaunches.graphs, 1)
      XCTAssertGreaterThan(launched.lastStepLaunches.kernels, 300, "a step launched op by op")
      XCTAssertEqual(launched.lastStepLaunches.graphs, 0)
      print("a training step: \(launched.lastStepLaunches.kernels) kernel launches op by op, 1 graph launch replayed")
    }
  }

  /// A step log on a device whose steps replay as graphs: the norm is measured inside the
  /// recorded step (no clipper here, so by the measuring one), and measuring changes no bit
  /// of the training. The first step, before any update, has the CPU's loss and norm.
  func testTheStepLogMeasuresInsideTheReplayedStepAndChangesNothing() throws {
    let count = 40
    var pixels = [UInt8](repeating: 0, count: count * 16 * 16)
    for i in pixels.indices { pixels[i] = UInt8((i * 7919 + i / 256 * 31) % 251) }
    let images = ImageDataset(pixels: pixels, labels: (0..<count).map { Int32($0 % 4) }, height: 16, width: 16, channels: 1, classes: 4)
    var configuration = TrainingConfiguration(
      model: MobileNetV2Configuration(width: 0.35, classes: 4, imageHeight: 16, imageWidth: 16, dropout: 0.2))
    configuration.batchSize = 16
    configuration.epochs = 2
    configuration.learningRate = 0.02
    let folder = NSTemporaryDirectory() + "quorum-steplog-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    func run(_ backend: Backend, log: String?) throws -> (trainer: Trainer, entries: [StepLog.Entry]) {
      let trainer = try Trainer(
        configuration: configuration, data: TrainingData(training: images), backend: backend, threads: 1, outputFolder: nil,
        reporter: ProgressReporter(style: .silent, totalEpochs: 2), prefetch: false)
      trainer.stepLogPath = log.map { folder + "/" + $0 }
      try trainer.run()
      return (trainer, try log.map { try StepLog.read(folder + "/" + $0) } ?? [])
    }
    let device = try TestDevice.backend()
    let logged = try run(device, log: "device.jsonl")
    let plain = try run(try TestDevice.backend(), log: nil)
    let cpu = try run(CPUBackend(threads: 1), log: "cpu.jsonl")
    XCTAssertGreaterThan(logged.trainer.replayedSteps, 0, "the steps replayed")
    XCTAssertEqual(logged.entries.count, 6, "3 batches (14, 13, 13) a epoch, 2 epochs")
    XCTAssertEqual(logged.entries.map(\.batch), cpu.entries.map(\.batch))
    XCTAssertEqual(logged.entries.map(\.learningRate), cpu.entries.map(\.learningRate))
    XCTAssert(logged.entries.allSatisfy { $0.gradientNorm.isFinite && $0.gradientNorm > 0 }, "\(logged.entries)")
    XCTAssertEqual(Set(logged.entries.map(\.gradientNorm)).count, 6, "a norm per step, not one repeated")
    XCTAssertEqual(logged.entries[0].loss, cpu.entries[0].loss, accuracy: 1e-5 * cpu.entries[0].loss)
    XCTAssertEqual(logged.entries[0].gradientNorm, cpu.entries[0].gradientNorm, accuracy: 1e-4 * cpu.entries[0].gradientNorm)
    for (a, b) in zip(logged.trainer.model.parameters, plain.trainer.model.parameters) {
      XCTAssertEqual(device.download(a.value).map(\.bitPattern), plain.trainer.backend.download(b.value).map(\.bitPattern), a.name)
    }
  }
}
