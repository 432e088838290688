import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Fine-tuning's schedules: a body frozen for the first epochs, and layer-wise
/// learning-rate decay.
final class FreezingAndLayerDecayTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func trainer(_ configuration: TrainingConfiguration, _ data: TrainingData, output: String?) throws -> Trainer {
    try Trainer(
      configuration: configuration, data: data, backend: CPUBackend(threads: 2), threads: 2, outputFolder: output,
      reporter: ProgressReporter(style: .silent, totalEpochs: configuration.epochs))
  }

  /// `--freeze body:1` of 3 epochs (with dropout, stochastic depth, clipping and an
  /// average, which all meet the frozen step): after the first epoch every feature weight
  /// and running statistic is as initialised and the classifier has moved; the state file
  /// holds the classifier's momentum only. Resumed there, the run ends bit for bit as one
  /// uninterrupted, and the body has trained by its end.
  func testAFrozenBodyTrainsOnlyTheClassifierThenEverything() throws {
    let data = try SmallFashionMNIST.load(training: 192, test: 32)
    var configuration = SmallFashionMNIST.configuration(epochs: 3)
    configuration.freezeBodyEpochs = 1
    let straight = try trainer(configuration, data, output: folder + "/straight")
    let initial = straight.model.parameters.map { $0.value.array() }
    let expected = try straight.run()

    let first = try trainer(configuration, data, output: folder + "/resumed")
    XCTAssertEqual(first.model.parameters.map { $0.value.array() }, initial, "the same seed starts from the same weights")
    try first.run(stoppingAfter: 1)
    let model = first.model
    let classifier = Set(model.classifierParameters.map(\.name))
    for (parameter, before) in zip(model.parameters, initial) where !classifier.contains(parameter.name) {
      XCTAssertEqual(parameter.value.array(), before, "\(parameter.name) moved while frozen")
    }
    for parameter in model.classifierParameters {
      let before = initial[model.parameters.firstIndex { $0 === parameter }!]
      XCTAssertNotEqual(parameter.value.array(), before, "\(parameter.name) did not train")
    }
    for norm in model.norms {
      XCTAssert(norm.runningMean.value.array().allSatisfy { $0 == 0 }, "\(norm.prefix)'s running mean moved while frozen")
      XCTAssert(norm.runningVariance.value.array().allSatisfy { $0 == 1 }, "\(norm.prefix)'s running variance moved while frozen")
    }
    let state = try Safetensors.read(folder + "/resumed/state.safetensors")
    let momenta = state.entries.map(\.name).filter { $0.hasPrefix("optimizer/momentum/") }.sorted()
    XCTAssertEqual(momenta, ["optimizer/momentum/classifier.1.bias", "optimizer/momentum/classifier.1.weight"])

    let second = try trainer(configuration, data, output: folder + "/resumed")
    let resumed = try second.run(resume: true)
    XCTAssertEqual(second.model.snapshot, straight.model.snapshot)
    XCTAssertEqual(resumed.testLogits, expected.testLogits)
    let stem = try XCTUnwrap(straight.model.parameters.first)
    XCTAssertNotEqual(stem.value.array(), initial[0], "the body trained once unfrozen")
    let after = try Safetensors.read(folder + "/resumed/state.safetensors")
    XCTAssertEqual(
      after.entries.map(\.name).filter { $0.hasPrefix("optimizer/momentum/") }.count, straight.model.parameters.count,
      "every parameter has momentum once the body trains")
  }

  /// A frozen body's step is the classifier's gradient on the body's evaluation-mode
  /// features: the same step as a linear layer trained on those features by hand.
  func testAFrozenStepIsTheClassifiersStepOnEvaluationFeatures() throws {
    let data = try SmallFashionMNIST.load(training: 64, test: 8)
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.freezeBodyEpochs = 1
    configuration.model.dropout = 0
    configuration.emaDecay = nil
    configuration.gradientClipNorm = nil
    configuration.weightDecay = 0
    configuration.labelSmoothing = 0
    configuration.augmentation = .none
    configuration.learningRate = 0.5
    let frozen = try trainer(configuration, data, output: nil)
    let batch = frozen.batches(epoch: 0)[0]
    // The classifier sees the body's evaluation-mode features: its logits are evaluation's.
    let images = data.training.subset(Array(batch))
    let logits = frozen.evaluate(images).logits
    let weight = frozen.model.classifier.weight.value.array()
    let bias = frozen.model.classifier.bias.value.array()
    _ = frozen.trainStep(batch, epoch: 0, step: 0, learningRate: 0.5)
    // ∂loss/∂bias of mean cross-entropy is mean(softmax − onehot); SGD's first Nesterov
    // step moves by lr·(1 + μ)·g.
    let classes = 10
    var expectedBias = bias
    for (row, label) in images.labels.enumerated() {
      let z = Array(logits[(row * classes)..<((row + 1) * classes)])
      let top = z.max()!
      let e = z.map { exp(Double($0 - top)) }
      let sum = e.reduce(0, +)
      for c in 0..<classes {
        let g = (e[c] / sum - (c == label ? 1 : 0)) / Double(images.count)
        expectedBias[c] -= Float(0.5 * (1 + 0.9) * g)
      }
    }
    let movedBias = frozen.model.classifier.bias.value.array()
    for c in 0..<classes { XCTAssertEqual(movedBias[c], expectedBias[c], accuracy: 1e-5, "bias \(c)") }
    XCTAssertNotEqual(frozen.model.classifier.weight.value.array(), weight)
  }

  /// With layer decay d, the first step of every layer is d^(depth below the classifier)
  /// times the step without it (the first SGD step is linear in the rate), and the
  /// classifier's is the same.
  func testLayerDecayScalesEachLayersStep() throws {
    let data = try SmallFashionMNIST.load(training: 64, test: 8)
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.emaDecay = nil
    configuration.gradientClipNorm = nil
    var decayed = configuration
    decayed.layerDecay = 0.8
    let plain = try trainer(configuration, data, output: nil)
    let layered = try trainer(decayed, data, output: nil)
    let initial = plain.model.parameters.map { $0.value.array() }
    let batch = plain.batches(epoch: 0)[0]
    _ = plain.trainStep(batch, epoch: 0, step: 0, learningRate: 0.2)
    _ = layered.trainStep(batch, epoch: 0, step: 0, learningRate: 0.2)
    let layers = plain.model.layers
    XCTAssertEqual(layers.first, 0)
    XCTAssertEqual(layers.last, plain.model.blockCount + 2, "the classifier is the top layer")
    var checked = 0
    for (index, parameter) in plain.model.parameters.enumerated() {
      let scale = Float(pow(0.8, Double(layers.last! - layers[index])))
      let start = initial[index], full = parameter.value.array(), scaled = layered.model.parameters[index].value.array()
      for i in start.indices {
        // Within float rounding of the weight itself (a step far below its ulp is lost).
        let tolerance = 1e-3 * abs(full[i] - start[i]) * scale + 2 * start[i].ulp
        guard abs((scaled[i] - start[i]) - scale * (full[i] - start[i])) <= tolerance else {
          return XCTFail("\(parameter.name)[\(i)] (layer \(layers[index])) stepped \(scaled[i] - start[i]), not \(scale) × \(full[i] - start[i])")
        }
        if abs(full[i] - start[i]) * scale > 100 * start[i].ulp { checked += 1 }
      }
    }
    XCTAssertGreaterThan(checked, 10_000, "enough steps stand clear of rounding to test the scales")
  }

  func testFreezeAndLayerDecayAreChecked() {
    var configuration = SmallFashionMNIST.configuration(epochs: 3)
    configuration.freezeBodyEpochs = 4
    XCTAssertThrowsError(try configuration.validate()) { XCTAssert("\($0)".contains("frozen for 1…3 epochs"), "\($0)") }
    configuration.freezeBodyEpochs = nil
    configuration.layerDecay = 1.5
    XCTAssertThrowsError(try configuration.validate()) { XCTAssert("\($0)".contains("layer decay must be in (0, 1]"), "\($0)") }
    XCTAssertEqual(TrainingConfiguration.frozenBodyEpochs("body:5"), 5)
    for wrong in ["body", "body:0", "head:3", "body:x", "body:3:4"] { XCTAssertNil(TrainingConfiguration.frozenBodyEpochs(wrong), wrong) }
  }
}

/// ImageNet's normalisation for torchvision's weights, and the data set's otherwise.
final class InputNormalizationTests: XCTestCase {
  func testImageNetStatisticsReplaceTheDataSetsAndAreRecordedInTheCheckpoint() throws {
    let data = try SmallFashionMNIST.load(training: 32, test: 8)
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    let own = try Trainer(configuration: configuration, data: data, backend: CPUBackend(threads: 1), threads: 1, outputFolder: nil)
    let statistics = data.training.channelStatistics()
    XCTAssertEqual(own.description.mean, statistics.mean)
    configuration.normalization = .imagenet
    let imagenet = try Trainer(configuration: configuration, data: data, backend: CPUBackend(threads: 1), threads: 1, outputFolder: nil)
    XCTAssertEqual(imagenet.description.mean[0], 0.449, accuracy: 1e-6, "grey images: the mean of ImageNet's means")
    XCTAssertEqual(imagenet.description.std[0], 0.226, accuracy: 1e-6)
    XCTAssertEqual(
      try InputNormalization.imagenet.statistics(channels: 3) { ([], []) }.mean, [0.485, 0.456, 0.406])
    XCTAssertThrowsError(try InputNormalization.imagenet.statistics(channels: 2) { ([], []) }) {
      XCTAssert("\($0)".contains("1 or 3 channels"), "\($0)")
    }
  }
}
