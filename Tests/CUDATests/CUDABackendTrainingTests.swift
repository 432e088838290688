import CUDA
import CUDAEmulator
import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// MobileNetV2 trained by the unchanged NN and Training code on the CUDA backend over the
/// emulated device (or the GPU of `QUORUM_TEST_DEVICE`), against the CPU backend: the device boundary holds (a device tensor has
/// no host memory, so any NN or Training code that reached for one would stop the test)
/// and the CUDA kernels compose into the same training as the CPU's.
final class CUDABackendTrainingTests: XCTestCase {
  static let cuda = try! TestDevice.backend()
  let configuration = MobileNetV2Configuration(
    preset: .imagenet, width: 0.35, inputChannels: 1, classes: 10, imageHeight: 28, imageWidth: 28, dropout: 0.2, stochasticDepth: 0.2)
  let batch = 16

  override func setUp() {
    // Every kernel is race-checked in KernelParityTests; here the step's hundreds of
    // launches run once each.
    quorum_emulator_set_race_check(0)
  }

  override func tearDown() { quorum_emulator_set_race_check(1) }

  /// The same model, data and schedule on one backend: per step, the loss; at the end, the
  /// weights.
  func train(
    on backend: Backend, steps: Int, learningRate: Float = 0.05, noise: Bool = true
  ) throws -> (losses: [Float], weights: [[Float]], logits: [Float]) {
    var configuration = configuration
    if !noise { (configuration.dropout, configuration.stochasticDepth) = (0, 0) }
    let model = try MobileNetV2(configuration, capacity: batch, backend: backend)
    model.initialize(seed: 7)
    let optimizer = SGD(parameters: model.parameters, momentum: 0.9, nesterov: true, weightDecay: 5e-4, backend: backend)
    let clipper = GradientClipper(model.parameters, maximumNorm: 5, backend: backend)
    let average = ExponentialMovingAverage(model: model, decay: 0.9)
    let images = backend.makeTensor(shape: [batch, 28, 28, 1])
    let labels = backend.makeTensor(shape: [batch]), loss = backend.makeTensor(shape: [1])
    let logitGradient = backend.makeTensor(shape: [batch, configuration.classes])
    let weights = backend.makeTensor(shape: [configuration.classes], values: (0..<configuration.classes).map { 0.5 + Float($0) / 10 })
    var losses: [Float] = []
    var lastLogits: [Float] = []
    for step in 0..<steps {
      // A learnable batch: each image is its label's brightness plus noise.
      let noise = RandomStream(seed: UInt64(step), purpose: .augmentation)
      let classes = (0..<batch).map { Int32(($0 * 7 + step) % configuration.classes) }
      var pixels = [Float](repeating: 0, count: images.capacity)
      for i in pixels.indices { pixels[i] = Float(classes[i / 784]) / 5 - 1 + 0.3 * noise.normal(at: UInt64(i)) }
      backend.upload(pixels, to: images)
      classes.withUnsafeBufferPointer { backend.uploadLabels($0, to: labels) }
      let logits = model.forward(images, batch: batch, training: true, seed: 11, step: UInt64(step))
      lastLogits = backend.download(logits, count: batch * configuration.classes)
      backend.softmaxCrossEntropy(
        logits: logits, labels: labels, batch: batch, classes: configuration.classes,
        options: CrossEntropyOptions(labelSmoothing: 0.1, classWeights: weights), logitGradient: logitGradient, loss: loss)
      model.backward(logitGradient: logitGradient, batch: batch)
      clipper.clip()
      optimizer.step(model.parameters, learningRate: learningRate)
      average.update()
      losses.append(backend.download(loss)[0])
    }
    return (losses, model.parameters.map { backend.download($0.value) } + model.norms.map { backend.download($0.runningVariance.value) }, lastLogits)
  }

  /// Relative to the largest value, with a floor of 1e-3: a projection's batch-norm shift
  /// has a gradient of rounding noise (the next layer's normalisation removes any shift),
  /// so after a step it holds values of 1e-9 that agree on neither backend.
  func assertClose(_ device: [Float], _ cpu: [Float], tolerance: Float, _ what: String) {
    let scale = max(cpu.map(abs).max() ?? 0, 1e-3)
    let worst = zip(device, cpu).map { abs($0 - $1) }.max() ?? 0
    XCTAssertFalse(device.contains { $0.isNaN }, "\(what): NaN on the device")
    XCTAssertLessThanOrEqual(worst / scale, tolerance, "\(what): worst difference \(worst), scale \(scale)")
  }

  /// One full step (dropout and stochastic depth drawn from the same streams, class
  /// weights, label smoothing, clipping, SGD, the weight average): logits, loss and every
  /// parameter and running variance after it agree with the CPU's in float32.
  ///
  /// The emulated cuBLASLt multiplies with OpenBLAS, so there the CPU backend runs the same
  /// GEMMs and every other kernel is held to 1e-4. Beside the CPU's other GEMM library the
  /// step itself is far less stable: its backward amplifies the products' rounding, and a
  /// different summation order moves weights by up to 1e-3 of a tensor's scale (measured on
  /// an Intel Xeon: OpenBLAS's AVX2 kernels against oneDNN's AVX-512 ones; between AVX-512
  /// kernels, 1e-6). A GPU's cuBLASLt sums in an order of its own: so against each library
  /// whose GEMMs it does not share, the device is held to the CPU's own difference between
  /// the two, twice over, plus 1e-4.
  func testOneTrainingStepMatchesTheCPUBackend() throws {
    let openBLAS = try train(on: CPUBackend(threads: 1, gemmLibrary: .openBLAS), steps: 1)
    let device = try train(on: Self.cuda, steps: 1)
    assertClose(device.logits, openBLAS.logits, tolerance: 1e-4, "logits")
    XCTAssertEqual(device.losses[0], openBLAS.losses[0], accuracy: 1e-4 * openBLAS.losses[0], "loss")
    let oneDNN = GEMMLibrary.oneDNNHasAVX2Kernels ? try train(on: CPUBackend(threads: 1, gemmLibrary: .oneDNN), steps: 1) : nil
    for index in device.weights.indices {
      let (onDevice, onOpenBLAS) = (device.weights[index], openBLAS.weights[index])
      let envelope = oneDNN.map { relativeDifference(onOpenBLAS, $0.weights[index]) }
      if TestDevice.isEmulated {
        assertClose(onDevice, onOpenBLAS, tolerance: 1e-4, "tensor \(index) after the step")
      } else if let envelope {
        assertClose(onDevice, onOpenBLAS, tolerance: 2 * envelope + 1e-4, "tensor \(index) against OpenBLAS's GEMMs (the CPU's own difference \(envelope))")
      }
      if let oneDNN, let envelope {
        assertClose(
          onDevice, oneDNN.weights[index], tolerance: 2 * envelope + 1e-4,
          "tensor \(index) against oneDNN's GEMMs (the CPU's own difference \(envelope))")
      }
    }
  }

  /// The largest difference relative to the largest value, floored as `assertClose` does.
  func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    (zip(a, b).map { abs($0 - $1) }.max() ?? 0) / max(b.map(abs).max() ?? 0, 1e-3)
  }

  /// Twenty steps. Float32 training of a batch of 16 is chaotic: the CPU backend with two
  /// threads instead of one (other summation orders in a few reductions) drifts from
  /// itself by up to 8 % of the loss within ten steps (measured at this recipe), and the
  /// device, whose softmax runs in float32 where the CPU's runs in float64, likewise. So
  /// single steps are compared tightly (above) and the run by its course: the first loss
  /// to 1e-5, every later one within 10 % of the CPU's, and the last ten steps' mean
  /// within 5 %. (Twenty steps of this batch do not reliably lower the loss, on either
  /// backend; learning is TrainerTests' to show.)
  func testTwentyStepsFollowTheCPUsCourse() throws {
    let cpu = try train(on: CPUBackend(threads: 1), steps: 20, learningRate: 0.01, noise: false)
    let device = try train(on: Self.cuda, steps: 20, learningRate: 0.01, noise: false)
    for step in 0..<20 {
      XCTAssertEqual(device.losses[step], cpu.losses[step], accuracy: 0.1 * cpu.losses[step], "step \(step)")
    }
    XCTAssertEqual(device.losses[0], cpu.losses[0], accuracy: 1e-5 * cpu.losses[0], "the first step, before any update")
    let (late, lateCPU) = (device.losses.suffix(10).reduce(0, +) / 10, cpu.losses.suffix(10).reduce(0, +) / 10)
    XCTAssertEqual(late, lateCPU, accuracy: 0.05 * lateCPU, "the last ten steps")
  }

  /// A device tensor has no host memory: code that reached for it would stop at once.
  func testADeviceTensorHasNoHostMemory() throws {
    let tensor = Self.cuda.makeTensor(shape: [3])
    XCTAssertFalse(tensor.isHost)
    XCTAssertEqual(Self.cuda.download(tensor), [0, 0, 0], "made zero-filled")
    Self.cuda.upload([1, 2, 3], to: tensor)
    let other = Self.cuda.makeTensor(shape: [3])
    Self.cuda.copy(tensor, to: other, count: 3)
    Self.cuda.fill(tensor, with: 9, count: 1)
    XCTAssertEqual(Self.cuda.download(tensor), [9, 2, 3])
    XCTAssertEqual(Self.cuda.download(other, count: 2, offset: 1), [2, 3])
  }

  /// Determinism: the same seed on two fresh emulated devices gives the same losses and the
  /// same bits in every weight and running statistic, with dropout and stochastic depth on
  /// (their masks come from the Philox streams keyed by position, not from launch order).
  func testTheSameSeedGivesBitIdenticalWeightsOnTwoFreshDevices() throws {
    let first = try train(on: try TestDevice.backend(), steps: 4)
    let second = try train(on: try TestDevice.backend(), steps: 4)
    XCTAssertEqual(first.losses.map(\.bitPattern), second.losses.map(\.bitPattern))
    XCTAssertEqual(first.logits.map(\.bitPattern), second.logits.map(\.bitPattern))
    for (index, (a, b)) in zip(first.weights, second.weights).enumerated() {
      XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "tensor \(index)")
    }
  }

  /// The Trainer on the CUDA backend allocates all of its device memory as it is built:
  /// a training step (after the first, which sizes the loss and clipping scratch) and an
  /// evaluation allocate nothing, so a device that holds the first step holds the run.
  func testTrainingStepsAndEvaluationsAllocateNoDeviceMemory() throws {
    let backend = try TestDevice.backend()
    let count = 48
    var pixels = [UInt8](repeating: 0, count: count * 28 * 28)
    for i in pixels.indices { pixels[i] = UInt8((i * 7919 + i / 784 * 31) % 251) }
    let images = ImageDataset(pixels: pixels, labels: (0..<count).map { Int32($0 % 4) }, height: 28, width: 28, channels: 1, classes: 4)
    var configuration = TrainingConfiguration(model: MobileNetV2Configuration(width: 0.35, classes: 4, imageHeight: 28, imageWidth: 28))
    configuration.batchSize = 16
    configuration.gradientClipNorm = 5
    configuration.emaDecay = 0.9
    configuration.augmentation = Augmentation(shift: 2, horizontalFlip: 0.5)
    let trainer = try Trainer(
      configuration: configuration, data: TrainingData(training: images), backend: backend, threads: 1, outputFolder: nil, prefetch: false)
    _ = trainer.trainStep(Array(0..<48)[0..<16], epoch: 0, step: 0, learningRate: 0.05)
    _ = trainer.evaluate(images)
    let (allocations, live) = (backend.device.allocationCount, backend.device.liveBytes)
    for step in 1..<3 { XCTAssert(trainer.trainStep(Array(0..<48)[16..<32], epoch: 0, step: step, learningRate: 0.05).isFinite) }
    _ = trainer.evaluate(images)
    XCTAssertNoThrow(try backend.check())
    XCTAssertEqual(backend.device.allocationCount, allocations, "device allocations inside steps or evaluations")
    XCTAssertEqual(backend.device.liveBytes, live)
  }

  /// A data set held in device memory: the device assembles each batch from the host's
  /// draws (shifts, flips, erased rectangles) and the run is bit for bit the run whose
  /// batches the host assembled, through training steps and the evaluation of another
  /// held set; holding the images allocates as the trainer is built, never in a step.
  func testBatchesAssembledOnTheDeviceTrainBitForBitAsTheHostsDo() throws {
    let count = 40
    func dataset(_ salt: Int) -> ImageDataset {
      var pixels = [UInt8](repeating: 0, count: count * 28 * 28)
      for i in pixels.indices { pixels[i] = UInt8((i * 7919 + i / 784 * 31 + salt) % 251) }
      return ImageDataset(pixels: pixels, labels: (0..<count).map { Int32(($0 + salt) % 4) }, height: 28, width: 28, channels: 1, classes: 4)
    }
    let (training, validation) = (dataset(0), dataset(5))
    var configuration = TrainingConfiguration(model: MobileNetV2Configuration(width: 0.35, classes: 4, imageHeight: 28, imageWidth: 28))
    configuration.batchSize = 16
    configuration.augmentation = Augmentation(shift: 3, horizontalFlip: 0.5, erasing: 0.6)
    func run(holding: Bool) throws -> (trainer: Trainer, losses: [Double], logits: [Float], allocations: Int, backend: CUDABackend) {
      let backend = try TestDevice.backend()
      let trainer = try Trainer(
        configuration: configuration, data: TrainingData(training: training, validation: validation), backend: backend, threads: 1,
        outputFolder: nil, prefetch: false, holdImages: holding)
      // Virtual indices past the end (a grown class's copies) read example i % n, with draws of their own.
      let order = Array(0..<count) + [41, 53, 77]
      var losses: [Double] = []
      var allocations = 0
      for step in 0..<3 {
        losses.append(trainer.trainStep(order[(step * 14)..<(step * 14 + 14)], epoch: 1, step: step, learningRate: 0.05))
        try backend.check()
        // The first step sizes the loss and clipping scratch; nothing after it allocates.
        if step == 0 { allocations = backend.device.allocationCount }
      }
      let logits = trainer.evaluate(trainer.data.validation!, testTimeAugmentation: TestTimeAugmentation(flips: true, shift: 2)).logits
      XCTAssertEqual(backend.device.allocationCount, allocations, "device allocations inside steps or evaluations (holding: \(holding))")
      return (trainer, losses, logits, allocations, backend)
    }
    let held = try run(holding: true), host = try run(holding: false)
    XCTAssert(held.trainer.holdsImages)
    XCTAssertFalse(host.trainer.holdsImages)
    XCTAssertEqual(held.losses.map(\.bitPattern), host.losses.map(\.bitPattern))
    XCTAssertEqual(held.logits.map(\.bitPattern), host.logits.map(\.bitPattern))
    for (a, b) in zip(held.trainer.model.parameters, host.trainer.model.parameters) {
      XCTAssertEqual(held.backend.download(a.value).map(\.bitPattern), host.backend.download(b.value).map(\.bitPattern), a.name)
    }
    // The pixels are on the device once, as bytes: 40 images of 784 bytes each, twice.
    XCTAssertGreaterThanOrEqual(held.backend.device.liveBytes - host.backend.device.liveBytes, 2 * count * 784)
  }

  /// The caching allocator: a worker's backend trains task after task of one model, and
  /// from the second task on it allocates nothing from the driver (no cuMemFree, which
  /// waits for the whole GPU, between tasks), while the second task trains bit for bit as
  /// the first: nothing of the first leaks through a reused block.
  func testASecondTaskOnTheSameBackendAllocatesNothingAndTrainsAsTheFirst() throws {
    let backend = try TestDevice.backend()
    var pixels = [UInt8](repeating: 0, count: 32 * 28 * 28)
    for i in pixels.indices { pixels[i] = UInt8((i * 7919 + i / 784 * 31) % 251) }
    let images = ImageDataset(pixels: pixels, labels: (0..<32).map { Int32($0 % 4) }, height: 28, width: 28, channels: 1, classes: 4)
    var configuration = TrainingConfiguration(model: MobileNetV2Configuration(width: 0.35, classes: 4, imageHeight: 28, imageWidth: 28))
    configuration.batchSize = 16
    configuration.gradientClipNorm = 5
    configuration.augmentation = Augmentation(shift: 2, horizontalFlip: 0.5)
    func task() throws -> (losses: [Double], logits: [Float], allocations: Int, live: Int) {
      let trainer = try Trainer(
        configuration: configuration, data: TrainingData(training: images), backend: backend, threads: 1, outputFolder: nil, prefetch: false)
      let losses = (0..<2).map { trainer.trainStep(Array(0..<32)[($0 * 16)..<($0 * 16 + 16)], epoch: 0, step: $0, learningRate: 0.05) }
      let logits = trainer.evaluate(images).logits
      try backend.check()
      return (losses, logits, backend.device.allocationCount, backend.device.liveBytes)
    }
    let first = try task()
    XCTAssertGreaterThan(backend.device.cachedBytes, 0, "the first task's buffers are kept")
    let second = try task()
    XCTAssertEqual(second.allocations, first.allocations, "the second task allocated from the driver")
    XCTAssertEqual(second.live, first.live)
    XCTAssertEqual(second.losses.map(\.bitPattern), first.losses.map(\.bitPattern))
    XCTAssertEqual(second.logits.map(\.bitPattern), first.logits.map(\.bitPattern))
  }

  /// Out of memory, the blocks other backends on the GPU keep cached go back and the
  /// allocation is tried again (each member's backend has its own cache).
  func testOutOfMemoryEmptiesTheCachesOfTheGPUAndTriesAgain() throws {
    guard TestDevice.isEmulated else { throw XCTSkip("a device's size is set on the emulated device only") }
    // GPU 1 of two, on its own, four MiB.
    quorum_emulator_set_device_count(2)
    let previous = quorum_emulator_set_memory(4 << 20)
    defer {
      quorum_emulator_set_memory(previous)
      quorum_emulator_set_device_count(1)
    }
    let member = try CUDABackend.emulated(1), other = try CUDABackend.emulated(1)
    do { _ = member.makeTensor(shape: [3 << 18]) }  // 3 MiB, freed into member's cache
    XCTAssertEqual(member.device.cachedBytes, 3 << 20)
    let big = other.makeTensor(shape: [(3 << 18) + 1024])
    XCTAssertNoThrow(try other.check(), "the allocation must succeed once member's cache is emptied")
    XCTAssertEqual(member.device.cachedBytes, 0)
    other.fill(big, with: 1)
    XCTAssertEqual(other.download(big, count: 2), [1, 1])
    // And with nothing cached to give back, out of memory stays out of memory, with the reason.
    _ = member.makeTensor(shape: [3 << 18])
    XCTAssertThrowsError(try member.check()) { XCTAssert("\($0)".contains("out of device memory"), "\($0)") }
  }

  /// After a failure the backend skips what follows and says what failed: a download reads
  /// NaN, never a stale or plausible number, and `check()` throws the first failure.
  func testAFailedOperationIsKeptAndEverythingAfterItIsSkipped() throws {
    let backend = try TestDevice.backend()
    let tensor = backend.makeTensor(shape: [4])
    backend.upload([1, 2, 3, 4], to: tensor)
    XCTAssertNoThrow(try backend.check())
    // More than the whole device (what is free grows by the blocks that caches give back).
    let total = try backend.device.memoryInformation().total
    _ = backend.makeTensor(shape: [total / 4 + 1024])
    XCTAssertThrowsError(try backend.check()) { error in
      let failure = error as? DeviceFailure
      XCTAssertEqual(failure?.isOutOfMemory, true, "\(error)")
      XCTAssertEqual(failure?.memory?.asked, (total / 4 + 1024) * 4)
      XCTAssert("\(error)".hasPrefix("out of device memory on \(backend.name)"), "\(error)")
    }
    backend.fill(tensor, with: 7, count: 4)
    XCTAssert(backend.download(tensor).allSatisfy(\.isNaN), "a download after a failure reads NaN")
  }
}
