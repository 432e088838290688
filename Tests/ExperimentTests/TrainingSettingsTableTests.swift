import Data
import Experiment
import Files
import Foundation
import NN
import QuorumTestSupport
import Training
import XCTest

/// The one table of training settings: `quorum train`'s flags and an experiment's
/// `training:` keys read and apply through it, so the same values give the same
/// configuration either way.
final class TrainingSettingsTableTests: XCTestCase {
  var folder = ""

  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  /// Sample values, as a flag spells them, each unlike its default. Several sets, since some
  /// settings refine one schedule or weighting and are refused beside another.
  static let sampleSets: [[(key: String, value: String)]] = [
    [
      ("epochs", "7"), ("batch_size", "32"), ("batching", "ragged"), ("preset", "cifar"), ("width", "0.5"), ("dropout", "0.3"), ("stochastic_depth", "0.1"), ("optimizer", "adamw"),
      ("learning_rate", "0.05"), ("momentum", "0.8"), ("nesterov", "false"), ("weight_decay", "0.001"), ("schedule", "step"),
      ("step_epochs", "3"), ("decay_factor", "0.5"), ("label_smoothing", "0.05"), ("clip_norm", "5"), ("ema_decay", "0.99"),
      ("seed", "7"), ("class_weights", "effective-number"), ("effective_number_beta", "0.99"), ("reweight_from_epoch", "5"),
      ("sampling", "class-balanced"), ("grow_classes_to", "20"), ("logit_adjustment", "1"), ("focal_gamma", "2"), ("shift", "1"),
      ("flip", "0.25"), ("vertical_flip", "0.1"), ("rotation", "10"), ("scale", "0.1"), ("shear", "5"), ("erasing", "0.25"),
      ("elastic_alpha", "8"), ("elastic_sigma", "3"), ("resized_crop", "0.35"), ("brightness", "0.2"), ("contrast", "0.3"),
      ("saturation", "0.4"), ("mixup", "0.2"), ("cutmix", "1"), ("mix_probability", "0.5"), ("tta_flips", "true"),
      ("tta_shift", "1"), ("select_by", "balanced_accuracy"), ("early_stopping", "3"), ("initialize_from", "start.safetensors"),
      ("new_classifier", "true"), ("freeze", "body:2"), ("normalization", "imagenet"), ("layer_decay", "0.7"),
    ],
    [("schedule", "plateau"), ("plateau_patience", "4"), ("decay_factor", "0.2"), ("class_weights", "1,2,3"), ("sampling", "square-root")],
    [("warmup", "0.3"), ("cycle_momentum", "true"), ("class_weights", "inverse-frequency")],
    [("warmup", "0.05"), ("schedule", "warmup-cosine")],
    // The preset's strides overridden, whichever comes first.
    [("stem_stride", "2"), ("preset", "cifar")],
    [("stage_strides", "1,2,2,2,1,1,1"), ("preset", "cifar")],
  ]

  /// The training set the command reads: 3 classes of 10 images of 8×8.
  func writeData() throws -> (images: String, labels: String) {
    let images = folder + "/train-images", labels = folder + "/train-labels"
    try FileBytes.writeAtomically(idxBytes(shape: [30, 8, 8], payload: (0..<30 * 64).map { UInt8($0 % 251) }), to: images)
    try FileBytes.writeAtomically(idxBytes(shape: [30], payload: (0..<30).map { UInt8($0 % 3) }), to: labels)
    return (images, labels)
  }

  func flagArguments(_ settings: [(key: String, value: String)]) -> [String] {
    settings.flatMap { key, value -> [String] in
      let setting = TrainingSettings.named(key)
      guard setting.form == .flag else { return [setting.flag, value] }
      return [value == "true" ? setting.flag : "--no-" + setting.flag.dropFirst(2)]
    }
  }

  /// The configuration an experiment file with these settings gives the same images.
  func experimentConfiguration(_ settings: [(key: String, value: String)]) throws -> TrainingConfiguration {
    let lines = settings.map { key, value -> String in
      let form = TrainingSettings.named(key).form
      let isList = form == .list || (form == .textOrList && value.contains(","))
      return "  \(key): " + (isList ? "[\(value)]" : value)
    }
    let experiment = try Experiment.parse("name: x\ndata:\n  train: /d\ntraining:\n" + lines.joined(separator: "\n") + "\n", file: "exp.yaml")
    return try experiment.variants[0].configuration(
      TrainingConfiguration(model: MobileNetV2Configuration(inputChannels: 1, classes: 3, imageHeight: 8, imageWidth: 8)), file: "exp.yaml")
  }

  func testEveryFlagGivesTheConfigurationOfItsExperimentKey() throws {
    let covered = Set(Self.sampleSets.flatMap { $0.map(\.key) })
    XCTAssertEqual(covered.sorted(), TrainingSettings.keys, "every setting of the table has a sample value here")
    let data = try writeData()
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    for settings in Self.sampleSets {
      let printed = try runQuorum(
        ["train", "--train-images", data.images, "--train-labels", data.labels, "--test-images", "none", "--output", folder + "/run",
         "--print-configuration"] + flagArguments(settings))
      XCTAssertEqual(printed.status, 0, printed.output)
      XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/run"), "--print-configuration writes nothing")
      let fromFlags = try JSONDecoder().decode(TrainingConfiguration.self, from: Data(printed.output.utf8))
      let fromFile = try experimentConfiguration(settings)
      XCTAssertEqual(
        String(decoding: try encoder.encode(fromFlags), as: UTF8.self), String(decoding: try encoder.encode(fromFile), as: UTF8.self),
        "flags and keys of \(settings.map(\.key))")
      // No setting is lost on either side: each one's value changes what the rest give.
      for (index, (key, _)) in settings.enumerated() {
        var without = settings
        without.remove(at: index)
        if let other = try? experimentConfiguration(without) { XCTAssertNotEqual(other, fromFile, "\(key) changed nothing") }
      }
    }
  }

  /// `--help` shows each setting's default from the table; applied, that default changes
  /// nothing in `TrainingConfiguration`'s defaults, so the two cannot drift apart.
  func testEveryDefaultShownIsTheConfigurationsDefault() throws {
    // A refinement's default holds beside the setting it refines.
    let context: [String: (key: String, value: SettingValue)] = [
      "step_epochs": ("schedule", SettingValue(kind: .text("step"), line: nil)),
      "decay_factor": ("schedule", SettingValue(kind: .text("step"), line: nil)),
      "plateau_patience": ("schedule", SettingValue(kind: .text("plateau"), line: nil)),
      "effective_number_beta": ("class_weights", SettingValue(kind: .text("effective-number"), line: nil)),
      "new_classifier": ("initialize_from", SettingValue(kind: .text("start.safetensors"), line: nil)),
    ]
    var withDefaults = 0
    for setting in TrainingSettings.table {
      guard let defaultValue = setting.defaultValue else { continue }
      var base = TrainingConfiguration(model: MobileNetV2Configuration())
      if let parent = context[setting.key] { try TrainingSettings.apply([parent], to: &base) }
      var applied = base
      try TrainingSettings.apply([(setting.key, setting.value(ofFlag: defaultValue))], to: &applied)
      XCTAssertEqual(applied, base, "\(setting.flag)'s shown default \(defaultValue) is not the configuration's")
      withDefaults += 1
    }
    XCTAssertGreaterThan(withDefaults, 40)
    let help = try runQuorum(["train", "--help"])
    XCTAssert(help.output.contains(TrainingSettings.named("elastic_sigma").summary.prefix(30)), help.output)
  }

  /// A value that does not fit is refused before any data loads, naming the flag, in the
  /// experiment file's words.
  func testAFlagOfTheWrongKindIsRefusedByName() throws {
    for (arguments, mentions) in [
      (["--epochs", "many"], ["--epochs must be a finite number", "many"]),
      (["--step-epochs", "3"], ["--step-epochs must be set with schedule step"]),
      (["--sampling", "random"], ["--sampling must be one of shuffle, class-balanced, square-root"]),
      (["--new-classifier"], ["--new-classifier must be beside initialize_from"]),
    ] {
      let refused = try runQuorum(["train", "--data", folder + "/nowhere", "--output", folder + "/run"] + arguments)
      XCTAssertNotEqual(refused.status, 0, refused.output)
      for part in mentions { XCTAssert(refused.output.contains(part), "\(arguments): \(refused.output)") }
      XCTAssertFalse(refused.output.contains("nowhere"), "refused before the data: \(refused.output)")
    }
  }

  /// docs/experiments.md names every key of the table.
  func testTheExperimentDocsNameEveryKey() throws {
    let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("docs/experiments.md")
    let text = try String(contentsOf: docs, encoding: .utf8)
    for key in TrainingSettings.keys {
      XCTAssertNotNil(text.range(of: "\\b\(key)\\b", options: .regularExpression), "docs/experiments.md lacks \(key)")
    }
  }
}
