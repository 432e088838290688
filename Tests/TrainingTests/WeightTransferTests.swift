import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Fine-tuning's start: weights of another class count, other input channels, or
/// torchvision's state dict.
final class WeightTransferTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func model(_ configuration: MobileNetV2Configuration, seed: UInt64) throws -> MobileNetV2 {
    let model = try MobileNetV2(configuration, capacity: 2, backend: CPUBackend(threads: 2), inferenceOnly: true)
    model.initialize(seed: seed)
    return model
  }

  func checkpoint(_ model: MobileNetV2, name: String) throws -> String {
    let path = "\(folder)/\(name).safetensors"
    let channels = model.configuration.inputChannels
    try ModelCheckpoint.save(
      model, description: .init(configuration: model.configuration, mean: .init(repeating: 0.5, count: channels), std: .init(repeating: 0.25, count: channels)),
      to: path)
    return path
  }

  /// torchvision's state dict as `safetensors.torch.save_file` writes it: the same names
  /// and layouts as Quorum's checkpoints (CheckpointTests holds them to torchvision's),
  /// with no Quorum description.
  func torchvisionStateDict(_ model: MobileNetV2) throws -> String {
    var file = try Safetensors.read(try checkpoint(model, name: "quorum-rgb"))
    file.metadata = ["format": "pt"]
    let path = folder + "/mobilenet_v2-imagenet.safetensors"
    try file.write(to: path)
    return path
  }

  /// An ImageNet-shaped state dict (3 channels, 1000 classes) into a 1-channel, 10-class
  /// model: every body tensor taken as it is, the stem summed over the colours, the
  /// classifier new; and back from 1 channel to 3 by repeating and rescaling.
  func testATorchvisionStateDictLoadsIntoAGreyModelOfOtherClasses() throws {
    let rgb = try model(MobileNetV2Configuration(width: 0.35, inputChannels: 3, classes: 1000), seed: 5)
    let path = try torchvisionStateDict(rgb)
    let grey = try model(MobileNetV2Configuration(width: 0.35, inputChannels: 1, classes: 10), seed: 9)
    let classifierBefore = grey.classifier.weight.value.array()
    let report = try WeightTransfer.load(path, into: grey)
    XCTAssertEqual(report.adapted, ["features.0.0.weight (3 → 1 input channels)"])
    XCTAssertEqual(report.new, ["classifier.1.weight (1000 classes in the file, 10 here)", "classifier.1.bias (1000 classes in the file, 10 here)"])
    XCTAssertEqual(report.dropped, [])
    XCTAssertEqual(report.taken.count, try Safetensors.read(path).entries.count - 3)
    XCTAssert(report.summary.hasPrefix("took \(report.taken.count) tensors; adapted features.0.0.weight"), report.summary)
    XCTAssertEqual(grey.classifier.weight.value.array(), classifierBefore, "the classifier stays as initialised")
    for (a, b) in zip(rgb.parameters, grey.parameters) where a.name != "features.0.0.weight" && !a.name.hasPrefix("classifier") {
      XCTAssertEqual(a.value.array(), b.value.array(), a.name)
    }
    for (a, b) in zip(rgb.norms, grey.norms) { XCTAssertEqual(a.runningVariance.value.array(), b.runningVariance.value.array()) }
    // The grey stem is the colour stem summed over its input channels (PyTorch layout).
    let colour = ModelCheckpoint.toCheckpointLayout(rgb.parameters[0].value.array(), of: rgb.parameters[0])
    let summed = ModelCheckpoint.toCheckpointLayout(grey.parameters[0].value.array(), of: grey.parameters[0])
    for o in 0..<rgb.configuration.stemChannels {
      for k in 0..<9 {
        let expected = (0..<3).reduce(Float(0)) { $0 + colour[(o * 3 + $1) * 9 + k] }
        XCTAssertEqual(summed[o * 9 + k], expected, accuracy: 1e-6)
      }
    }
    // Back to colour: each channel a third of the grey stem, so a grey image in three
    // channels meets the same filter.
    let again = try model(MobileNetV2Configuration(width: 0.35, inputChannels: 3, classes: 10), seed: 2)
    let greyPath = try checkpoint(grey, name: "grey")
    XCTAssertEqual(try WeightTransfer.load(greyPath, into: again).adapted, ["features.0.0.weight (1 → 3 input channels)"])
    let repeated = ModelCheckpoint.toCheckpointLayout(again.parameters[0].value.array(), of: again.parameters[0])
    for o in 0..<3 { for c in 0..<3 { for k in 0..<9 { XCTAssertEqual(repeated[(o * 3 + c) * 9 + k], summed[o * 9 + k] / 3, accuracy: 1e-7) } } }
  }

  /// A state dict written by torchvision and safetensors themselves
  /// (Fixtures/make_torchvision_state_dict.py: mobilenet_v2 width 0.35, 3 channels, 1000
  /// classes, float16): loaded whole into a colour model of ImageNet's shape, it gives
  /// torchvision's eval-mode logits; loaded into a grey 10-class model, the stem is
  /// adapted, the classifier new, and it fine-tunes on Fashion-MNIST.
  func testAStateDictWrittenByTorchvisionGivesItsLogitsAndFineTunesOnGreyImages() throws {
    func fixture(_ name: String) throws -> String {
      try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures")).path
    }
    let stateDict = try fixture("torchvision_mobilenet_v2_w0.35")
    let reference = try Safetensors.read(try fixture("torchvision_mobilenet_v2_w0.35_logits"))
    let imagenet = try MobileNetV2(
      MobileNetV2Configuration(width: 0.35, inputChannels: 3, classes: 1000, imageHeight: 32, imageWidth: 32), capacity: 2,
      backend: CPUBackend(threads: 2), inferenceOnly: true)
    let whole = try WeightTransfer.load(stateDict, into: imagenet)
    XCTAssertEqual(whole.adapted + whole.new + whole.dropped, [], whole.summary)
    XCTAssertEqual(imagenet.norms.first?.batchesTracked, 7)
    let input = try reference.floats("input", shape: [2, 32, 32, 3])
    let images = imagenet.backend.makeTensor(shape: [2, 32, 32, 3], values: input)
    let logits = imagenet.forward(images, batch: 2, training: false).array(count: 2000)
    let expected = try reference.floats("logits", shape: [2, 1000])
    let scale = expected.map(abs).max()!
    XCTAssertGreaterThan(scale, 0.05, "the reference logits are not all near zero")
    for i in expected.indices { XCTAssertEqual(logits[i], expected[i], accuracy: 1e-3 * scale, "logit \(i)") }

    let data = try SmallFashionMNIST.load(training: 96, test: 16)
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.initialization = .init(path: stateDict)
    configuration.normalization = .imagenet
    let trainer = try Trainer(
      configuration: configuration, data: data, backend: CPUBackend(threads: 2), threads: 2, outputFolder: nil,
      reporter: ProgressReporter(style: .silent, totalEpochs: 1))
    let result = try trainer.run()
    let report = try XCTUnwrap(trainer.initializationReport)
    XCTAssertEqual(report.adapted, ["features.0.0.weight (3 → 1 input channels)"])
    XCTAssertEqual(report.new.count, 2)
    XCTAssert(try XCTUnwrap(result.progress.history.last).trainingLoss.isFinite)
  }

  /// Another width or preset is refused, naming the tensor or the strides, and a refused
  /// load leaves the model as it was.
  func testAnotherWidthOrPresetIsRefusedAndChangesNothing() throws {
    let target = try model(MobileNetV2Configuration(width: 0.35), seed: 1)
    let before = target.snapshot
    let wide = try checkpoint(try model(MobileNetV2Configuration(width: 0.5), seed: 4), name: "wide")
    XCTAssertThrowsError(try WeightTransfer.load(wide, into: target)) {
      XCTAssert("\($0)".contains("wide.safetensors") && "\($0)".contains("tensor \"features.") && "\($0)".contains("width 0.5 there, 0.35 here"), "\($0)")
    }
    let cifar = try checkpoint(try model(MobileNetV2Configuration(preset: .cifar, width: 0.35), seed: 4), name: "cifar")
    XCTAssertThrowsError(try WeightTransfer.load(cifar, into: target)) { XCTAssert("\($0)".contains("stem stride 1"), "\($0)") }
    XCTAssertEqual(target.snapshot, before)
    // Its own kind loads whole: nothing new, nothing dropped.
    let same = try checkpoint(try model(MobileNetV2Configuration(width: 0.35), seed: 8), name: "same")
    let report = try WeightTransfer.load(same, into: target)
    XCTAssertEqual(report.new + report.adapted + report.dropped, [])
    // Other labels of the same count: the classifier afresh when asked.
    let classifier = target.classifier.weight.value.array()
    let fresh = try WeightTransfer.load(wide.replacingOccurrences(of: "wide", with: "same"), into: target, newClassifier: true)
    XCTAssertEqual(fresh.new, ["classifier.1.weight (asked for)", "classifier.1.bias (asked for)"])
    XCTAssertEqual(target.classifier.weight.value.array(), classifier)
  }

  /// A member fine-tuned from another member's checkpoint of another class count: loads,
  /// trains, and the run says what was replaced.
  func testFineTuningFromACheckpointOfAnotherClassCountTrains() throws {
    let data = try SmallFashionMNIST.load(training: 256, test: 64)
    var configuration = SmallFashionMNIST.configuration(epochs: 1)
    configuration.model.classes = 10
    var other = configuration.model
    other.classes = 4
    let pretrained = try checkpoint(try model(other, seed: 6), name: "four-classes")
    let output = folder + "/run"
    // The start is part of the configuration (the experiment's initialize_from, a task's
    // settings): `run` loads it.
    configuration.initialization = .init(path: pretrained)
    let trainer = try Trainer(configuration: configuration, data: data, backend: CPUBackend(threads: 2), threads: 2, outputFolder: output,
      reporter: ProgressReporter(style: .silent, totalEpochs: 1))
    let result = try trainer.run()
    let report = try XCTUnwrap(trainer.initializationReport, "run loaded the configuration's checkpoint")
    XCTAssertEqual(report.new.count, 2)
    XCTAssert(report.new[0].contains("4 classes in the file, 10 here"), report.new[0])
    XCTAssert(try XCTUnwrap(result.progress.history.last).trainingLoss.isFinite)
    let metrics = try String(contentsOfFile: output + "/metrics.json", encoding: .utf8)
    XCTAssert(metrics.contains("four-classes"), "metrics.json names the start")

    // A missing start fails naming the file, before any epoch.
    configuration.initialization = .init(path: folder + "/absent.safetensors")
    let failing = try Trainer(configuration: configuration, data: data, backend: CPUBackend(threads: 2), threads: 2, outputFolder: nil,
      reporter: ProgressReporter(style: .silent, totalEpochs: 1))
    XCTAssertThrowsError(try failing.run()) { XCTAssert("\($0)".contains("absent.safetensors"), "\($0)") }
  }
}
