import Data
import Files
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

final class TrainerTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func trainer(_ configuration: TrainingConfiguration, _ data: TrainingData, output: String?, prefetch: Bool = true) throws -> Trainer {
    try Trainer(
      configuration: configuration, data: data, backend: CPUBackend(threads: 2), threads: 2, outputFolder: output,
      reporter: ProgressReporter(style: .silent, totalEpochs: configuration.epochs), prefetch: prefetch)
  }

  /// Prefetching changes when batches are assembled, never what they hold.
  func testPrefetchingGivesBitIdenticalTraining() throws {
    let data = try SmallFashionMNIST.load(training: 160, test: 16)
    var configuration = SmallFashionMNIST.configuration(epochs: 2)
    configuration.augmentation = Augmentation(shift: 2, horizontalFlip: 0.5, rotation: 10, erasing: 0.3)
    configuration.mixing = Mixing(mixup: 0.2)
    let with = try trainer(configuration, data, output: nil, prefetch: true)
    let without = try trainer(configuration, data, output: nil, prefetch: false)
    let a = try with.run()
    let b = try without.run()
    XCTAssertEqual(with.model.snapshot, without.model.snapshot)
    XCTAssertEqual(a.testLogits, b.testLogits)
  }

  /// The memorisation check: 100 examples, no regularisation, the loss must fall under 0.05.
  /// A configuration that memorises a hundred examples: AdamW, no regularisation, no
  /// augmentation.
  static func memorising(epochs: Int) -> TrainingConfiguration {
    var configuration = TrainingConfiguration(model: MobileNetV2Configuration(preset: .imagenet, width: 0.35, dropout: 0))
    configuration.epochs = epochs
    configuration.batchSize = 50
    configuration.optimizer = .adamw
    configuration.learningRate = 3e-3
    configuration.weightDecay = 0
    // Annealed to zero: a constant rate leaves the loss bouncing around its floor.
    configuration.schedule = .warmupCosine(warmupFraction: 0.1)
    configuration.labelSmoothing = 0
    configuration.augmentation = .none
    return configuration
  }

  func testOverfitsOneHundredExamples() throws {
    var data = try SmallFashionMNIST.load(training: 100, test: 10)
    data.training = ImageDataset(
      pixels: data.training.pixels + data.validation!.pixels, labels: data.training.labels + data.validation!.labels,
      height: 28, width: 28, channels: 1, classes: 10)
    data.validation = nil
    let configuration = Self.memorising(epochs: 100)
    let result = try trainer(configuration, data, output: nil).run()
    XCTAssertEqual(data.training.count, 100)
    let finalLoss = try XCTUnwrap(result.progress.history.last?.trainingLoss)
    XCTAssertLessThan(finalLoss, 0.05, "training loss after 100 epochs")
    XCTAssertGreaterThan(result.progress.history[0].trainingLoss, 1.5, "it started from chance")
  }

  /// An epoch's batches hold every example once, at most the batch size each, sizes
  /// differing by one at most: no ragged last batch of a handful (it made a 4/5 fold of
  /// FMNIST-LT diverge at the reference learning rate).
  func testBatchesAreEvenAndCoverTheEpoch() throws {
    var data = try SmallFashionMNIST.load(training: 141, test: 10)
    data.validation = nil
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.batchSize = 32
    let batches = try trainer(configuration, data, output: nil).batches(epoch: 0)
    let sizes = batches.map(\.count)
    XCTAssertEqual(sizes.reduce(0, +), data.training.count)
    XCTAssertEqual(Set(batches.flatMap { $0 }).count, data.training.count, "each example once")
    XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "\(sizes)")
    XCTAssertLessThanOrEqual(sizes.max()!, 32)
    XCTAssertEqual(batches.count, (data.training.count + 31) / 32)
  }

  /// Ragged batching cuts as PyTorch's DataLoader (drop_last=False): full batches and the
  /// rest last; a last batch of one is dropped, as PyTorch cannot train on it.
  func testRaggedBatchingIsPyTorchsDataLoader() throws {
    var data = try SmallFashionMNIST.load(training: 141, test: 10)
    data.validation = nil
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.batchSize = 32
    configuration.batching = .ragged
    XCTAssertEqual(data.training.count, 106, "the fixture holds some examples out")
    let batches = try trainer(configuration, data, output: nil).batches(epoch: 0)
    XCTAssertEqual(batches.map(\.count), [32, 32, 32, 10])
    XCTAssertEqual(Set(batches.flatMap { $0 }).count, data.training.count, "each example once")
    data.training = data.training.subset(Array(0..<97))
    XCTAssertEqual(try trainer(configuration, data, output: nil).batches(epoch: 0).map(\.count), [32, 32, 32])
    XCTAssertEqual(try trainer(configuration, data, output: nil).batches(epoch: 1).map(\.count), [32, 32, 32])
  }

  /// A configuration saved before `batching` existed (a state file's) reads as even.
  func testAConfigurationWithoutBatchingReadsAsEven() throws {
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.batching = .ragged
    var object = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) as? [String: Any])
    XCTAssertEqual(object["batching"] as? String, "ragged")
    object["batching"] = nil
    let decoded = try JSONDecoder().decode(TrainingConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
    configuration.batching = .even
    XCTAssertEqual(decoded, configuration)
  }

  /// The step log has a line per step with what the step used and measured: the learning
  /// rate of the schedule, SGD's momentum, the batch's loss (whose batch-weighted means
  /// are the epochs' training losses) and the global gradient norm before clipping (here
  /// the first step's, recomputed from the gradients). Logging changes no bit of the
  /// training, and a resumed run's log equals an uninterrupted run's.
  func testTheStepLogRecordsEveryStepAndChangesNothing() throws {
    let data = try SmallFashionMNIST.load(training: 160, test: 16)
    var configuration = SmallFashionMNIST.configuration(epochs: 2)
    configuration.gradientClipNorm = nil
    // Both with run folders: a run restores its best epoch from its folder.
    let plain = try trainer(configuration, data, output: folder + "/plain")
    try plain.run()
    let logged = try trainer(configuration, data, output: folder + "/logged")
    logged.stepLogPath = folder + "/logged/steps.jsonl"
    let result = try logged.run()
    XCTAssertEqual(logged.model.snapshot, plain.model.snapshot, "measuring the norm changes nothing")

    let entries = try StepLog.read(folder + "/logged/steps.jsonl")
    let perEpoch = logged.batches(epoch: 0).count
    XCTAssertEqual(entries.count, 2 * perEpoch)
    XCTAssertEqual(entries.map(\.step), Array(1...(2 * perEpoch)))
    XCTAssertEqual(entries.map(\.epoch), [Int](repeating: 1, count: perEpoch) + [Int](repeating: 2, count: perEpoch))
    for (index, entry) in entries.enumerated() {
      let epoch = index / perEpoch
      XCTAssertEqual(entry.batch, logged.batches(epoch: epoch)[index % perEpoch].count)
      let rate = configuration.schedule.learningRate(
        peak: configuration.learningRate, step: index, totalSteps: 2 * perEpoch, stepsPerEpoch: perEpoch, plateauFactor: 1)
      XCTAssertEqual(entry.learningRate, rate, "step \(index + 1)")
      XCTAssertEqual(entry.momentum, Double(Float(0.9)), "the float32 momentum SGD used")
    }
    for epoch in 1...2 {
      let steps = entries.filter { $0.epoch == epoch }
      let mean = steps.map { $0.loss * Double($0.batch) }.reduce(0, +) / Double(steps.map(\.batch).reduce(0, +))
      XCTAssertEqual(mean, result.progress.history[epoch - 1].trainingLoss, accuracy: 1e-12, "epoch \(epoch)")
    }

    // The first step's norm, from the gradients that step leaves.
    let single = try trainer(configuration, data, output: nil)
    _ = single.trainStep(single.batches(epoch: 0)[0], epoch: 0, step: 0, learningRate: Float(entries[0].learningRate))
    let squares = single.model.parameters.map { parameter in
      parameter.gradient.array().reduce(0.0) { $0 + Double($1) * Double($1) }
    }
    XCTAssertEqual(entries[0].gradientNorm, squares.reduce(0, +).squareRoot(), accuracy: 1e-5 * entries[0].gradientNorm)
    XCTAssertGreaterThan(Set(entries.map(\.gradientNorm)).count, perEpoch, "a norm per step")

    // Clipping logs the norm before it clips: the first step's is the same.
    var clipped = configuration
    clipped.gradientClipNorm = Float(entries[0].gradientNorm / 2)
    let clipping = try trainer(clipped, data, output: folder + "/clipped")
    clipping.stepLogPath = folder + "/clipped/steps.jsonl"
    try clipping.run(stoppingAfter: 1)
    XCTAssertEqual(try StepLog.read(folder + "/clipped/steps.jsonl")[0].gradientNorm, entries[0].gradientNorm)

    // Interrupted after epoch 1 with a torn line at the end, then resumed.
    let first = try trainer(configuration, data, output: folder + "/resumed")
    first.stepLogPath = folder + "/resumed/steps.jsonl"
    try first.run(stoppingAfter: 1)
    let handle = try XCTUnwrap(FileHandle(forWritingAtPath: folder + "/resumed/steps.jsonl"))
    handle.seekToEndOfFile()
    handle.write(Data("{\"epoch\": 2, \"st".utf8))
    handle.closeFile()
    XCTAssertEqual(try StepLog.read(folder + "/resumed/steps.jsonl"), Array(entries.prefix(perEpoch)), "a torn last line is left out")
    let second = try trainer(configuration, data, output: folder + "/resumed")
    second.stepLogPath = folder + "/resumed/steps.jsonl"
    try second.run(resume: true)
    XCTAssertEqual(try StepLog.read(folder + "/resumed/steps.jsonl"), entries)
  }

  /// A step log that is not one names its file and line.
  func testAStepLogThatDoesNotReadNamesItsLine() throws {
    let path = folder + "/steps.jsonl"
    let entry = StepLog.Entry(epoch: 1, step: 1, batch: 8, learningRate: 0.1, momentum: nil, loss: .nan, gradientNorm: 2)
    let log = try StepLog(path: path)
    try log.write([entry])
    let read = try StepLog.read(path)
    XCTAssert(read.count == 1 && read[0].loss.isNaN && read[0].momentum == nil, "\(read)")
    try Data("{\"epoch\": 1}\n".utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    XCTAssertThrowsError(try StepLog.read(path)) {
      XCTAssert("\($0)".contains(path) && "\($0)".contains("line 1"), "\($0)")
    }
    XCTAssertThrowsError(try StepLog(path: folder)) { XCTAssert("\($0)".contains("is a folder"), "\($0)") }
  }

  /// Snapshots every epoch are the evaluation weights: the last one scores the test set
  /// as the run's final logits.
  func testSnapshotsKeepEachEpochsEvaluationWeights() throws {
    let data = try SmallFashionMNIST.load(training: 160, test: 32)
    var configuration = SmallFashionMNIST.configuration(epochs: 2)
    configuration.restoreBest = false
    let run = try trainer(configuration, data, output: folder + "/snapshots")
    run.snapshotInterval = 1
    let result = try run.run()
    let fresh = try trainer(configuration, data, output: nil)
    try ModelCheckpoint.load(folder + "/snapshots/epoch-2.safetensors", into: fresh.model)
    XCTAssertEqual(fresh.evaluate(try XCTUnwrap(data.test)).logits, result.testLogits)
    try ModelCheckpoint.load(folder + "/snapshots/epoch-1.safetensors", into: fresh.model)
    XCTAssertNotEqual(fresh.evaluate(try XCTUnwrap(data.test)).logits, result.testLogits, "epoch 1's weights are its own")
  }

  /// With targets (a teacher's probabilities), training follows them, not the labels: a
  /// teacher that always says "the next class" is learnt; mixup beside targets is refused.
  func testTrainingFollowsTheTeachersTargets() throws {
    var data = try SmallFashionMNIST.load(training: 100, test: 10)
    data.training = data.training.appending(data.validation!)
    data.validation = nil
    let classes = 10
    var targets = [Float](repeating: 0.01 / 9, count: data.training.count * classes)
    for (row, label) in data.training.labels.enumerated() { targets[row * classes + (Int(label) + 1) % classes] = 0.99 }
    data.targets = targets
    var configuration = Self.memorising(epochs: 40)
    let trained = try trainer(configuration, data, output: nil)
    _ = try trained.run()
    let logits = trained.evaluate(data.training).logits
    var followsTeacher = 0
    var followsLabel = 0
    for (row, label) in data.training.labels.enumerated() {
      let slice = logits[(row * classes)..<((row + 1) * classes)]
      let predicted = slice.indices.max { slice[$0] < slice[$1] }! - row * classes
      if predicted == (Int(label) + 1) % classes { followsTeacher += 1 }
      if predicted == Int(label) { followsLabel += 1 }
    }
    XCTAssertGreaterThan(followsTeacher, 90, "predictions follow the teacher's targets")
    XCTAssertLessThan(followsLabel, 5)
    configuration.mixing.mixup = 0.2
    XCTAssertThrowsError(try trainer(configuration, data, output: nil)) { XCTAssert("\($0)".contains("mixup"), "\($0)") }
  }

  /// Stop after epoch 1 and resume in a new trainer: the same bits as an uninterrupted run,
  /// with dropout, stochastic depth, augmentation, EMA, clipping and early stopping state.
  func testResumeAfterAnEpochEqualsAnUninterruptedRun() throws {
    let data = try SmallFashionMNIST.load(training: 256, test: 64)
    let configuration = SmallFashionMNIST.configuration(epochs: 3)
    let uninterrupted = try trainer(configuration, data, output: folder + "/straight")
    let expected = try uninterrupted.run()

    let first = try trainer(configuration, data, output: folder + "/resumed")
    let partial = try first.run(stoppingAfter: 1)
    XCTAssertEqual(partial.progress.epoch, 1)
    XCTAssertNil(partial.testLogits)
    let second = try trainer(configuration, data, output: folder + "/resumed")
    let resumed = try second.run(resume: true)

    // Everything but the wall-clock fields.
    func untimed(_ history: [EpochRecord]) -> [EpochRecord] {
      history.map { var record = $0; record.seconds = 0; record.imagesPerSecond = 0; return record }
    }
    XCTAssertEqual(untimed(resumed.progress.history), untimed(expected.progress.history))
    XCTAssertEqual(resumed.progress.history.count, 3)
    XCTAssertEqual(second.model.snapshot, uninterrupted.model.snapshot)
    XCTAssertEqual(resumed.testLogits, expected.testLogits)
    let a = try NumPy.readFloat32(folder + "/straight/test.logits.npy")
    let b = try NumPy.readFloat32(folder + "/resumed/test.logits.npy")
    XCTAssertEqual(a.shape, [64, 10])
    XCTAssertEqual(a.values, b.values)

    var changed = configuration
    changed.learningRate = 0.01
    XCTAssertThrowsError(try trainer(changed, data, output: folder + "/resumed").run(resume: true)) { error in
      XCTAssert("\(error)".contains("state.safetensors") && "\(error)".contains("other settings"), "\(error)")
    }
  }

  func testSameSeedGivesBitIdenticalWeightsAndLogits() throws {
    let data = try SmallFashionMNIST.load(training: 160, test: 32)
    let configuration = SmallFashionMNIST.configuration(epochs: 1)
    let a = try trainer(configuration, data, output: nil)
    let b = try trainer(configuration, data, output: nil)
    let resultA = try a.run()
    let resultB = try b.run()
    XCTAssertEqual(a.model.snapshot, b.model.snapshot)
    XCTAssertEqual(resultA.testLogits, resultB.testLogits)
    var other = configuration
    other.seed = 12
    let c = try trainer(other, data, output: nil)
    try c.run()
    XCTAssertNotEqual(c.model.snapshot, a.model.snapshot)
  }

  /// When the last epoch's weights are the final ones, the final logits are that epoch's
  /// evaluation, not a second pass over the images; they equal a fresh evaluation of the
  /// saved model (here with the weight average, which the epochs are evaluated with).
  /// Test-time augmentation changes the final pass, so it is made. The test set can be
  /// scored only at the end (`--test-every 0`, as cluster tasks do).
  func testTheFinalLogitsReuseTheLastEpochsEvaluation() throws {
    let data = try SmallFashionMNIST.load(training: 160, test: 32)
    var configuration = SmallFashionMNIST.configuration(epochs: 2)
    configuration.restoreBest = false  // (a restored best epoch is evaluated again)
    XCTAssertNotNil(configuration.emaDecay)
    let run = try trainer(configuration, data, output: folder + "/reuse")
    let result = try run.run()
    XCTAssertEqual(run.evaluationPasses, 4, "validation and test at each of 2 epochs, nothing repeated")
    let fresh = try trainer(configuration, data, output: nil)
    try ModelCheckpoint.load(folder + "/reuse/model.safetensors", into: fresh.model)
    XCTAssertEqual(fresh.evaluate(try XCTUnwrap(data.test)).logits, result.testLogits)
    XCTAssertEqual(fresh.evaluate(try XCTUnwrap(data.validation)).logits, result.validationLogits)

    // Scoring the test set only at the end: the same training, the same final logits, the
    // test set passed over once.
    var atTheEnd = configuration
    atTheEnd.testEvaluationInterval = 0
    let once = try trainer(atTheEnd, data, output: nil)
    let onceResult = try once.run()
    XCTAssertEqual(once.evaluationPasses, 3, "validation at each of 2 epochs, the test set at the end")
    XCTAssertEqual(onceResult.progress.history.map { $0.test == nil }, [true, true])
    XCTAssertEqual(onceResult.testLogits, result.testLogits)
    XCTAssertEqual(onceResult.test?.accuracy, result.test?.accuracy)

    var augmented = configuration
    augmented.testTimeAugmentation = TestTimeAugmentation(flips: true)
    let flipped = try trainer(augmented, data, output: nil)
    let flippedResult = try flipped.run()
    XCTAssertEqual(flipped.evaluationPasses, 6, "the final passes are made with the flips")
    XCTAssertNotEqual(flippedResult.testLogits, result.testLogits)
  }

  func testEarlyStoppingRestoresTheBestEpoch() throws {
    let data = try SmallFashionMNIST.load(training: 192, test: 32)
    var configuration = SmallFashionMNIST.configuration(epochs: 8)
    configuration.learningRate = 2  // diverging on purpose after a good start
    configuration.schedule = .constant
    configuration.gradientClipNorm = 1
    configuration.emaDecay = nil
    configuration.earlyStoppingPatience = 2
    let run = try trainer(configuration, data, output: folder + "/early")
    let result = try run.run()
    let best = try XCTUnwrap(result.progress.bestEpoch)
    let scores = result.progress.history.map { $0.validation!.accuracy }
    XCTAssertEqual(scores[best - 1], scores.max())
    XCTAssert(result.progress.stoppedEarly, "accuracy \(scores)")
    XCTAssertEqual(result.progress.history.count, best + 2, "stops after `patience` epochs without improvement")
    XCTAssertLessThan(result.progress.history.count, 8)
    // The final model is the best epoch's: its validation accuracy is the best one.
    XCTAssertEqual(result.validation?.accuracy ?? -1, scores.max()!, accuracy: 1e-12)
  }

  /// Flip TTA = the mean of the probabilities on the images and on their mirrors (made
  /// here by hand), written as log-probabilities.
  func testFlipTestTimeAugmentationAveragesMirroredPredictions() throws {
    let data = try SmallFashionMNIST.load(training: 96, test: 40)
    let run = try trainer(SmallFashionMNIST.configuration(epochs: 1), data, output: nil)
    try run.run()
    let test = try XCTUnwrap(data.test)
    var mirrored = test
    for n in 0..<test.count {
      for y in 0..<28 { for x in 0..<28 { mirrored.pixels[n * 784 + y * 28 + x] = test.pixels[n * 784 + y * 28 + 27 - x] } }
    }
    let plain = run.evaluate(test).logits
    let flipped = run.evaluate(mirrored).logits
    let averaged = run.evaluate(test, testTimeAugmentation: TestTimeAugmentation(flips: true)).logits
    func softmax(_ row: ArraySlice<Float>) -> [Double] {
      let largest = Double(row.max()!)
      let e = row.map { exp(Double($0) - largest) }
      return e.map { $0 / e.reduce(0, +) }
    }
    for n in 0..<test.count {
      let a = softmax(plain[(n * 10)..<(n * 10 + 10)]), b = softmax(flipped[(n * 10)..<(n * 10 + 10)])
      for c in 0..<10 { XCTAssertEqual(Double(exp(averaged[n * 10 + c])), (a[c] + b[c]) / 2, accuracy: 1e-5) }
    }
    XCTAssertEqual(TestTimeAugmentation(flips: true, shift: 1).transforms.count, 10)
    XCTAssertEqual(run.evaluate(test, testTimeAugmentation: .none).logits, plain)
  }

  /// Weights loaded from a checkpoint replace the random ones in the model and in the
  /// weight average (which would otherwise pull training back towards the random start).
  func testInitialisingFromACheckpointAlsoResetsTheAverage() throws {
    let data = try SmallFashionMNIST.load(training: 96, test: 8)
    var plain = SmallFashionMNIST.configuration(epochs: 1)
    plain.emaDecay = nil
    let source = try trainer(plain, data, output: folder + "/source")
    try source.run()
    let target = try trainer(SmallFashionMNIST.configuration(epochs: 1), data, output: nil)
    XCTAssertNotEqual(target.model.snapshot, source.model.snapshot)
    try target.initializeWeights(from: folder + "/source/model.safetensors")
    XCTAssertEqual(target.model.snapshot, source.model.snapshot)
    let average = try XCTUnwrap(target.average)
    XCTAssertEqual(average.state.map { $0.tensor.array() }, target.model.snapshot)
  }

  func testMetricsOnAKnownConfusion() {
    // Labels 0,0,0,1,1,2; predictions 0,0,1,1,1,1 (class 2 never predicted).
    let labels: [Int32] = [0, 0, 0, 1, 1, 2]
    let predictions = [0, 0, 1, 1, 1, 1]
    var logits = [Float](repeating: 0, count: 18)
    for (n, p) in predictions.enumerated() { logits[n * 3 + p] = 5 }
    let metrics = logits.withUnsafeBufferPointer { ClassificationMetrics.compute(logits: $0.baseAddress!, labels: labels, classes: 3) }
    XCTAssertEqual(metrics.accuracy, 4.0 / 6, accuracy: 1e-12)
    XCTAssertEqual(metrics.perClassRecall, [2.0 / 3, 1, 0])
    XCTAssertEqual(metrics.balancedAccuracy, (2.0 / 3 + 1) / 3, accuracy: 1e-12)
    XCTAssertEqual(metrics.macroF1, (0.8 + 2 * 2.0 / 6 + 0) / 3, accuracy: 1e-12)  // F1: 2·2/5, 2·2/(2+4), 0
    XCTAssertEqual(metrics.lowestRecall, 0)
    XCTAssertEqual(metrics.confusion, [[2, 1, 0], [0, 2, 0], [0, 1, 0]])
    let p = exp(5.0) / (exp(5.0) + 2)
    XCTAssertEqual(metrics.negativeLogLikelihood, (4 * -log(p) + 2 * -log(1 / (exp(5.0) + 2))) / 6, accuracy: 1e-9)
  }
}
