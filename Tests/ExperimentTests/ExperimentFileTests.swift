import Data
import Experiment
import Foundation
import QuorumTestSupport
import Search
import Tensor
import Training
import XCTest

final class ExperimentFileTests: XCTestCase {
  func assertError(_ yaml: String, line: Int?, mentions parts: [String], file: StaticString = #filePath, fileLine: UInt = #line) {
    XCTAssertThrowsError(try Experiment.parse(yaml, file: "exp.yaml"), file: file, line: fileLine) { error in
      guard let error = error as? ExperimentError else { return XCTFail("\(error)", file: file, line: fileLine) }
      XCTAssertEqual(error.file, "exp.yaml", file: file, line: fileLine)
      if let line { XCTAssertEqual(error.line, line, "\(error)", file: file, line: fileLine) }
      for part in parts { XCTAssert("\(error)".contains(part), "\"\(error)\" should mention \"\(part)\"", file: file, line: fileLine) }
    }
  }

  func testGridExpandsIntoNamedVariantsAndTasks() throws {
    let experiment = try Experiment.parse("""
      name: lt
      data:
        train: /data
        long_tail_ratio: 100
      folds: {k: 3, seed: 7}
      training:
        epochs: 4
        dropout: 0.3
        preset: cifar
      grid:
        seed: [0, 1]
        dropout: [0.1, 0.2]
        sampling: [shuffle]
      """, file: "exp.yaml")
    XCTAssertEqual(experiment.runDirectory, "runs/lt")
    XCTAssertEqual(experiment.foldCount, 3)
    XCTAssertEqual(experiment.foldSeed, 7)
    XCTAssertEqual(experiment.variants.map(\.name), [
      "seed-0_dropout-0.1_sampling-shuffle", "seed-0_dropout-0.2_sampling-shuffle",
      "seed-1_dropout-0.1_sampling-shuffle", "seed-1_dropout-0.2_sampling-shuffle",
    ])
    XCTAssertEqual(experiment.tasks.count, 12)
    XCTAssertEqual(experiment.tasks[4].id, "seed-0_dropout-0.2_sampling-shuffle/fold1")
    // A variant's configuration: the defaults, overridden by its grid values.
    let configuration = try experiment.variants[3].configuration(TrainingConfiguration(model: .init()), file: "exp.yaml")
    XCTAssertEqual(configuration.epochs, 4)
    XCTAssertEqual(configuration.seed, 1)
    XCTAssertEqual(configuration.model.dropout, 0.2)
    XCTAssertEqual(configuration.model.stemStride, 1, "cifar preset")
    XCTAssertEqual(configuration.model.stageStrides, [1, 1, 2, 2, 1, 2, 1])
  }

  /// Every training flag of `quorum train` is a key of the experiment file's `training:`
  /// section, and every key a flag, so the two cannot drift apart: a flag added to one and
  /// not the other fails here. Left out, each for its reason: what a task of a run decides
  /// for itself (the device, threads, run folder, resume, progress, diagnosis files) and
  /// what it fixes (the last epoch's weights kept, the test set scored once at the end).
  func testEveryTrainingFlagOfQuorumTrainIsAnExperimentKey() throws {
    let help = try runQuorum(["train", "--help"])
    XCTAssertEqual(help.status, 0, help.output)
    // The options after the data group: "  --name <value>", "  --name", "  --name/--no-name".
    let options = try XCTUnwrap(help.output.components(separatedBy: "\nOPTIONS:\n").last)
    var flags = Set<String>()
    for line in options.split(separator: "\n") where line.hasPrefix("  --") {
      let name = line.dropFirst(4).prefix { $0.isLetter || $0.isNumber || $0 == "-" }
      flags.insert(name.replacingOccurrences(of: "-", with: "_"))
    }
    let runLevel: Set = [
      "threads", "device", "prefetch", "prefetch_threads", "device_data", "cuda_graphs", "output", "resume",
      "step_log", "save_every", "progress", "version", "restore_best", "test_every", "print_configuration",
    ]
    XCTAssert(runLevel.isSubset(of: flags), "left-out names that are no flag: \(runLevel.subtracting(flags).sorted())")
    XCTAssertGreaterThan(flags.count, 50, "the help was read: \(flags.sorted())")
    XCTAssertEqual(flags.subtracting(runLevel).sorted(), TrainingSettings.keys)
  }

  /// The schedule's and the class weights' parameters hold wherever they stand, and are
  /// refused beside a schedule or weighting that has no such parameter, naming both.
  func testScheduleAndWeightParametersApplyInAnyOrder() throws {
    func configuration(_ training: String) throws -> TrainingConfiguration {
      let experiment = try Experiment.parse("name: x\ndata:\n  train: /d\ntraining: {\(training)}\n", file: "exp.yaml")
      return try experiment.variants[0].configuration(TrainingConfiguration(model: .init()), file: "exp.yaml")
    }
    XCTAssertEqual(try configuration("warmup: 0.3, schedule: warmup-cosine").schedule, .warmupCosine(warmupFraction: 0.3))
    XCTAssertEqual(try configuration("warmup: 0.05").schedule, .oneCycle(warmupFraction: 0.05))
    XCTAssertEqual(try configuration("decay_factor: 0.5, step_epochs: 3, schedule: step").schedule, .step(epochs: 3, factor: 0.5))
    XCTAssertEqual(
      try configuration("plateau_patience: 4, schedule: plateau, decay_factor: 0.2").schedule, .reduceOnPlateau(factor: 0.2, patience: 4))
    XCTAssertEqual(
      try configuration("effective_number_beta: 0.999, class_weights: effective-number").classWeighting, .effectiveNumber(beta: 0.999))
    // A grid's schedule comes after the defaults' refinements, and they still hold.
    let grid = try Experiment.parse(
      "name: x\ndata:\n  train: /d\ntraining: {warmup: 0.25}\ngrid:\n  schedule: [one-cycle, warmup-cosine]\n", file: "exp.yaml")
    XCTAssertEqual(
      try grid.variants.map { try $0.configuration(TrainingConfiguration(model: .init()), file: "exp.yaml").schedule },
      [.oneCycle(warmupFraction: 0.25), .warmupCosine(warmupFraction: 0.25)])
    for (training, mentions) in [
      ("schedule: constant, warmup: 0.1", ["warmup", "one-cycle"]), ("step_epochs: 2", ["step_epochs", "schedule step"]),
      ("decay_factor: 0.5", ["decay_factor", "plateau"]), ("schedule: step, plateau_patience: 2", ["plateau_patience"]),
      ("effective_number_beta: 0.99", ["effective_number_beta", "effective-number"]),
    ] {
      XCTAssertThrowsError(try configuration(training), training) { error in
        for part in mentions { XCTAssert("\(error)".contains(part), "\(error) lacks \(part)") }
      }
    }
  }

  func testEveryTrainingSettingOfTheExampleAndMoreIsAccepted() throws {
    let experiment = try Experiment.parse("""
      name: all
      data: {train: /data, layout: csv, images: /img, id_column: id, label_column: label, image_size: 28x28, channels: 1}
      training: {batch_size: 64, batching: ragged, optimizer: adamw, learning_rate: 0.003, weight_decay: 0.05, schedule: warmup-cosine,
        label_smoothing: 0.05, class_weights: effective-number, reweight_from_epoch: 3, sampling: square-root,
        grow_classes_to: 500, logit_adjustment: 1, focal_gamma: 2, mixup: 0.2, cutmix: 1, mix_probability: 0.5,
        shift: 3, flip: 0.5, vertical_flip: 0.1, rotation: 10, scale: 0.1, shear: 5, erasing: 0.25, elastic_alpha: 8,
        elastic_sigma: 4, tta_flips: true, tta_shift: 1, clip_norm: 2, ema_decay: 0.999, select_by: balanced_accuracy,
        early_stopping: 3, width: 0.75, stochastic_depth: 0.1, stage_strides: [1, 1, 2, 2, 1, 2, 1], nesterov: false}
      """, file: "exp.yaml")
    let c = try experiment.variants[0].configuration(TrainingConfiguration(model: .init()), file: "exp.yaml")
    XCTAssertEqual(c.optimizer, .adamw)
    XCTAssertEqual(c.batching, .ragged)
    XCTAssertEqual(c.classWeighting, .effectiveNumber(beta: 0.9999))
    XCTAssertEqual(c.sampling, .squareRoot)
    XCTAssertEqual(c.growClassesTo, 500)
    XCTAssertEqual(c.mixing, Mixing(mixup: 0.2, cutmix: 1, probability: 0.5))
    XCTAssertEqual(c.augmentation.elasticAlpha, 8)
    XCTAssertEqual(c.testTimeAugmentation, TestTimeAugmentation(flips: true, shift: 1))
    XCTAssertEqual(c.selectionMetric, .balancedAccuracy)
    XCTAssertFalse(c.nesterov)
    XCTAssertEqual(experiment.variants.map(\.name), ["default"])
    XCTAssertEqual(experiment.foldCount, 5, "five folds by default")
  }

  /// The competition's metric picks every member's epoch and the ensemble's submission,
  /// unless a member's select_by or the ensemble's objective says otherwise.
  func testTheMetricKeyDrivesSelectionAndTheEnsemble() throws {
    let base = TrainingConfiguration(model: .init())
    let kappa = try Experiment.parse("name: k\nmetric: quadratic_kappa\ndata: {train: /data}\ngrid: {seed: [0, 1]}\n", file: "k.yaml")
    XCTAssertEqual(kappa.ensemble.objective, .quadraticKappa)
    for variant in kappa.variants { XCTAssertEqual(try variant.configuration(base, file: "k.yaml").selectionMetric, .quadraticKappa) }
    let mixed = try Experiment.parse("""
      name: m
      metric: f_beta:2
      data: {train: /data}
      training: {select_by: nll}
      grid: {select_by: [accuracy, map_at_k:3]}
      ensemble: {objective: "weighted_recall:1,2,3"}  # quoted: a flow mapping splits at commas
      """, file: "m.yaml")
    XCTAssertEqual(mixed.ensemble.objective, .weightedRecall([1, 2, 3]))
    XCTAssertEqual(try mixed.variants.map { try $0.configuration(base, file: "m.yaml").selectionMetric }, [.accuracy, .mapAtK(3)])
    let unset = try Experiment.parse("name: u\ndata: {train: /data}\n", file: "u.yaml")
    XCTAssertEqual(unset.ensemble.objective, .balancedAccuracy)
    XCTAssertEqual(try unset.variants[0].configuration(base, file: "u.yaml").selectionMetric, .accuracy)
    assertError("name: x\nmetric: kappa\ndata: {train: y}\n", line: 2, mentions: ["metric must be", "quadratic_kappa", "kappa"])
    assertError("name: x\nmetric: [accuracy]\ndata: {train: y}\n", line: 2, mentions: ["metric must be text"])
    assertError("name: x\ndata: {train: y}\ntraining: {select_by: f_beta:0}\n", line: 3, mentions: ["select_by", "f_beta:BETA"])
  }

  /// The search: section: its plan, its members best-1…best-N with the training defaults
  /// until it has chosen, and its errors with their lines.
  func testTheSearchSectionPlansTrialsAndNamesItsMembers() throws {
    let experiment = try Experiment.parse("""
      name: s
      metric: macro_f1
      data: {train: /data}
      training: {width: 0.35, epochs: 5}
      search:
        sampler: tpe
        trials: 10
        parallel: 4
        epochs: 2
        best: 2
        space:
          learning_rate: {log_uniform: [0.001, 0.3]}
          dropout: {uniform: [0, 0.5]}
          batch_size: {integer: [32, 128]}
          sampling: {choice: [shuffle, class-balanced]}
      """, file: "s.yaml")
    let plan = try XCTUnwrap(experiment.search)
    XCTAssertEqual(plan.sampler, .tpe)
    XCTAssertEqual(plan.batches, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    XCTAssertEqual(plan.metric, .macroF1)
    XCTAssertEqual(plan.space.parameters.map(\.name), ["learning_rate", "dropout", "batch_size", "sampling"])
    XCTAssertEqual(experiment.variants.map(\.name), ["best-1", "best-2"])
    XCTAssertEqual(experiment.tasks.map(\.id).count, 10, "2 members × 5 folds")
    // A trial: its sampled settings over the defaults, and the search's epochs.
    let trial = plan.variant("trial-3", overrides: plan.overrides([.number(0.01), .number(0.2), .number(64), .text("class-balanced")], trial: true))
    let configuration = try trial.configuration(TrainingConfiguration(model: .init()), file: "s.yaml")
    XCTAssertEqual(configuration.learningRate, 0.01)
    XCTAssertEqual(configuration.model.dropout, 0.2)
    XCTAssertEqual(configuration.batchSize, 64)
    XCTAssertEqual(configuration.sampling, .classBalanced)
    XCTAssertEqual(configuration.epochs, 2)
    XCTAssertEqual(configuration.model.width, 0.35)
    let grid = try Experiment.parse("name: g\ndata: {train: /d}\nsearch: {sampler: grid, space: {seed: {integer: [0, 2]}, flip: {choice: [0, 0.5]}}}\n", file: "g.yaml")
    XCTAssertEqual(grid.search?.trials, 6, "a grid's trials default to all its combinations")
    XCTAssertEqual(grid.search?.folds, [0], "a trial trains on fold 0 unless told")
    let threeFolds = try Experiment.parse(
      "name: f\ndata: {train: /d}\nfolds: {k: 4}\nsearch: {trials: 2, folds: 3, space: {dropout: {uniform: [0, 1]}}}\n", file: "f.yaml")
    XCTAssertEqual(threeFolds.search?.folds, [0, 1, 2])
    XCTAssertEqual(threeFolds.search?.foldsDescription, "folds 0, 1, 2")
    let oneFold = try Experiment.parse(
      "name: f\ndata: {train: /d}\nfolds: {k: 4}\nsearch: {trials: 2, fold: 3, space: {dropout: {uniform: [0, 1]}}}\n", file: "f.yaml")
    XCTAssertEqual(oneFold.search?.folds, [3])

    let base = "name: x\ndata: {train: /d}\n"
    assertError(base + "search: {trials: 4, space: {width: {choice: [wide]}}}\n", line: 3, mentions: ["search.space.width", "wide"])
    assertError(base + "search: {trials: 4, space: {dropot: {uniform: [0, 1]}}}\n", line: 3, mentions: ["unknown training setting \"dropot\""])
    assertError(base + "search: {trials: 4, space: {dropout: {normal: [0, 1]}}}\n", line: 3, mentions: ["search.space.dropout", "log_uniform"])
    assertError(base + "search: {trials: 4, space: {learning_rate: {log_uniform: [0, 1]}}}\n", line: 3, mentions: ["learning_rate", "0 < low"])
    assertError(base + "search: {space: {dropout: {uniform: [0, 1]}}}\n", line: 3, mentions: ["search needs trials"])
    assertError(base + "search: {trials: 2, best: 3, space: {dropout: {uniform: [0, 1]}}}\n", line: 3, mentions: ["search.best (3)", "2 trials"])
    assertError(base + "search: {sampler: grid, space: {dropout: {uniform: [0, 1]}}}\n", line: 3, mentions: ["dropout: a grid needs discrete values"])
    assertError(base + "search: {trials: 2, colour: red, space: {dropout: {uniform: [0, 1]}}}\n", line: 3, mentions: ["unknown search setting \"colour\""])
    assertError(base + "folds: {k: 3}\nsearch: {trials: 2, folds: 4, space: {dropout: {uniform: [0, 1]}}}\n", line: 4, mentions: ["search.folds", "1…3"])
    assertError(base + "search: {trials: 2, fold: 0, folds: 2, space: {dropout: {uniform: [0, 1]}}}\n", line: 3, mentions: ["fold: (one fold) or folds:"])
    assertError(base + "grid: {seed: [0, 1]}\nsearch: {trials: 2, space: {dropout: {uniform: [0, 1]}}}\n", line: 3, mentions: ["search: and grid: cannot be combined"])
  }

  /// Fine-tuning's keys: the checkpoint to start from (its new_classifier wherever it
  /// stands), the freeze and the layer decay, and their errors with the line.
  func testFineTuningKeysSetTheStartTheFreezeAndTheDecay() throws {
    let base = TrainingConfiguration(model: .init())
    let experiment = try Experiment.parse("""
      name: f
      data: {train: /data}
      training:
        new_classifier: true
        freeze: body:3
        layer_decay: 0.7
        initialize_from: runs/pretrained/model.safetensors
      """, file: "f.yaml")
    let configuration = try experiment.variants[0].configuration(base, file: "f.yaml")
    XCTAssertEqual(configuration.initialization, .init(path: "runs/pretrained/model.safetensors", newClassifier: true))
    XCTAssertEqual(configuration.freezeBodyEpochs, 3)
    XCTAssertEqual(configuration.layerDecay, 0.7)
    func failure(_ training: String) -> String {
      do {
        let experiment = try Experiment.parse("name: x\ndata: {train: /d}\ntraining:\n  \(training)\n", file: "x.yaml")
        _ = try experiment.variants[0].configuration(base, file: "x.yaml")
      } catch { return "\(error)" }
      return "no error"
    }
    for (training, expected) in [
      ("freeze: 3", "freeze must be body:EPOCHS, got 3"), ("new_classifier: true", "beside initialize_from"),
      ("layer_decay: 2", "layer decay must be in (0, 1]"), ("freeze: body:99", "frozen for 1…15 epochs"),
    ] {
      let message = failure(training)
      XCTAssert(message.contains(expected), message)
    }
  }

  func testBadFilesNameTheKeyAndLine() throws {
    assertError("name: x\ndata:\n  train: y\ntraining:\n  epochs: many\n", line: 5, mentions: ["epochs", "must be a finite number", "many"])
    assertError("name: x\ndata:\n  train: y\ngrid:\n  dropot: [0.1]\n", line: 5, mentions: ["unknown training setting \"dropot\""])
    assertError("name: x\ndata:\n  train: y\ngrid:\n  seed: []\n", line: 5, mentions: ["grid.seed", "non-empty list"])
    assertError("name: x\ndata:\n  train: y\nfolds: {k: 1}\n", line: 4, mentions: ["folds.k", "≥ 2"])
    assertError("name: x\ndata:\n  train: y\ncolour: red\n", line: 4, mentions: ["unknown key \"colour\""])
    assertError("name: x\ndata:\n  trian: y\n", line: 3, mentions: ["unknown data key \"trian\""])
    assertError("data:\n  train: y\n", line: nil, mentions: ["\"name\" is required"])
    // A name that would put the run directory elsewhere (runs/.. is the project).
    for escaping in ["..", ".", ".hidden", "a/b", "ü"] {
      assertError("name: \"\(escaping)\"\ndata:\n  train: y\n", line: 1, mentions: ["name", "not start with a dot"])
    }
    // A grid bounded before it is built: 101 × 100 variants.
    let seeds = (0..<101).map(String.init).joined(separator: ", "), dropouts = (0..<100).map { "0.\($0)" }.joined(separator: ", ")
    assertError("name: x\ndata:\n  train: y\ngrid:\n  seed: [\(seeds)]\n  dropout: [\(dropouts)]\n", line: 5, mentions: ["10100 variants", "at most 10000"])
    assertError("name: x\n", line: nil, mentions: ["\"data\" is required"])
    assertError("name: x\ndata: [1\n", line: nil, mentions: ["not valid YAML"])
    assertError("name: x\ndata:\n  train: y\ntraining:\n  dropout: 1.5\n", line: nil, mentions: ["variant default", "dropout"])
    assertError("name: x\ndata:\n  train: y\ntraining:\n  sampling: sometimes\n", line: 5, mentions: ["sampling", "class-balanced"])
    // A text key written as a list became its default (device: [cuda:3] trained on the CPU).
    assertError("name: x\ndevice: [cuda:3]\ndata:\n  train: y\n", line: 2, mentions: ["device must be text"])
    assertError("name: x\nrun_directory: {a: b}\ndata:\n  train: y\n", line: 2, mentions: ["run_directory must be text"])
    assertError("name: x\ndevice: gpu0\ndata:\n  train: y\n", line: 2, mentions: ["device must be cpu, auto, cuda, cuda:N, cuda:all, or cuda-emulated", "gpu0"])
  }

  /// A short file that declares an enormous tree through aliases ("billion laughs": nine
  /// levels of ten aliases, 10⁹ values) is refused from its node count, before any reader
  /// expands it; before the bound, parsing it grew past 12 GB.
  func testAliasBombsAndOversizedFilesAreRefusedBeforeExpansion() throws {
    var yaml = "name: x\ndata:\n  train: y\nanchors:\n  - &l0 [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.0]\n"
    for level in 1...9 { yaml += "  - &l\(level) [" + Array(repeating: "*l\(level - 1)", count: 10).joined(separator: ", ") + "]\n" }
    // Under grid: (a list setting's values) and under training: alike.
    let underGrid = yaml.replacingOccurrences(of: "anchors:", with: "grid:\n  stage_strides:")
    for bomb in [yaml, underGrid, yaml + "training:\n  stage_strides: *l9\n"] {
      assertError(bomb, line: nil, mentions: ["more than 100000 values", "aliases"])
    }
    // Aliases used within the bound still work: one list shared by two keys.
    let shared = try Experiment.parse(
      "name: x\ndata:\n  train: y\ngrid:\n  seed: &s [0, 1]\ntraining:\n  stage_strides: &t [1, 1, 2, 2, 2, 1, 1]\n",
      file: "exp.yaml")
    XCTAssertEqual(shared.variants.count, 2)
    // A file past 1 MiB is not an experiment; neither is one that is not UTF-8.
    assertError("name: x\ndata:\n  train: y\n#" + String(repeating: "x", count: 1 << 20), line: nil, mentions: ["bytes", "right file"])
    let directory = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let binary = directory + "/exp.yaml"
    try Data([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xff, 0xfe]).write(to: URL(fileURLWithPath: binary))
    XCTAssertThrowsError(try Experiment.read(binary)) { XCTAssert("\($0)".contains("\(binary): is not UTF-8 text"), "\($0)") }
    XCTAssertThrowsError(try Experiment.read(directory)) { XCTAssert("\($0)".contains("is a directory"), "\($0)") }
  }

  /// Numbers from the file are bounded and finite where they are read: a huge value is an
  /// error naming the setting, never a trap converting it or an allocation sized by it.
  func testOutOfRangeNumbersAreErrorsNamingTheSetting() {
    let base = "name: x\ndata:\n  train: y\ntraining:\n"
    let cases: [(setting: String, mentions: [String])] = [
      ("epochs: 1e300", ["epochs", "whole number"]),
      ("epochs: 10000000", ["epochs", "1…100000"]),
      ("batch_size: 1000000000", ["batch size", "2…65536"]),
      ("seed: -1", ["seed", "≥ 0"]),
      ("learning_rate: .inf", ["learning_rate", "finite"]),
      ("learning_rate: nan", ["learning_rate", "finite"]),
      ("width: 1e9", ["width", "(0, 4]"]),
      ("shift: 10000000000", ["shift", "0…1024"]),
      ("tta_shift: 5000", ["test-time shift", "0…1024"]),
      ("momentum: 1.5", ["momentum", "[0, 1)"]),
      ("weight_decay: 1e300", ["weight decay"]),
      ("clip_norm: 0", ["clip norm", "positive"]),
      ("mixup: 1e300", ["mixup"]),
      ("early_stopping: 0", ["early stopping", "at least 1"]),
      ("grow_classes_to: 100000000000", ["grow", "10000000"]),
      ("class_weights: [1, 1, 1, 1, 1, 1, 1, 1, 1, -1]", ["class weights", "≥ 0"]),
      ("class_weights: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]", ["class weights", "not all 0"]),
    ]
    for (setting, mentions) in cases { assertError(base + "  \(setting)\n", line: nil, mentions: mentions) }
    assertError("name: x\ndata:\n  train: y\ndistill:\n  temperature: .inf\n", line: nil, mentions: ["temperature"])
    assertError("name: x\ndata:\n  train: y\nensemble:\n  weights: {default: .inf}\n", line: nil, mentions: ["weight ≥ 0"])
  }

  /// The data section's numbers are checked when the data is loaded, before any file is read.
  func testDataSectionNumbersAreChecked() throws {
    for (entry, mention) in [
      ("image_size: 28x0", "1…4096"), ("image_size: 100000x28", "1…4096"), ("image_size: 28", "28x28"),
      ("channels: abc", "channels must be 1"), ("channels: 4", "channels must be 1"), ("long_tail_ratio: abc", "long_tail_ratio"),
      ("long_tail_ratio: 0.5", "long_tail_ratio"),
    ] {
      let experiment = try Experiment.parse("name: x\ndata:\n  train: /nonexistent\n  \(entry)\n", file: "exp.yaml")
      XCTAssertThrowsError(try ExperimentData.load(experiment), entry) { XCTAssert("\($0)".contains(mention), "\(entry): \($0)") }
    }
    // How workers get the data: served by the coordinator unless every worker reads the paths.
    XCTAssertEqual(try Experiment.parse("name: x\ndata: {train: /d}\n", file: "exp.yaml").dataAccess, .served)
    XCTAssertEqual(try Experiment.parse("name: x\ndata: {train: /d, data_access: shared}\n", file: "exp.yaml").dataAccess, .shared)
    assertError("name: x\ndata:\n  train: /d\n  data_access: nfs\n", line: 4, mentions: ["data_access must be served or shared", "nfs"])
  }

  /// `device:` names where `quorum run`'s local workers train, in `--device`'s spellings.
  func testDeviceSpellings() throws {
    let spellings: [(String, ComputeDevice)] = [
      ("cpu", .cpu), ("auto", .automatic), ("cuda", .cuda(ordinal: 0)), ("cuda:3", .cuda(ordinal: 3)), ("cuda:all", .allGPUs()),
      ("cuda-emulated", .cudaEmulated), ("cuda-emulated:2", .cuda(ordinal: 2, emulated: true)), ("cuda-emulated:all", .allGPUs(emulated: true)),
    ]
    for (text, device) in spellings {
      XCTAssertEqual(try Experiment.parse("name: x\ndevice: \(text)\ndata:\n  train: y\n", file: "exp.yaml").device, device, text)
      XCTAssertEqual(device.description, text == "cuda" ? "cuda:0" : text)
      XCTAssertEqual(ComputeDevice(device.description), device, "\(text) round-trips")
    }
    XCTAssertEqual(ComputeDevice("cuda-emulated:0"), .cudaEmulated)
    XCTAssertEqual(try Experiment.parse("name: x\ndata:\n  train: y\n", file: "exp.yaml").device, .cpu, "the default")
    for wrong in ["cuda:-1", "cuda:x", "cuda:+1", "cuda:", "cuda:ALL", "cudax", "cuda-emulated:", "cuda-emulatedall", "CUDA", "gpu"] {
      XCTAssertNil(ComputeDevice(wrong), wrong)
    }
  }

  /// `refit:` names grid variants (all by default) and whether they are submitted;
  /// `ensemble:` sets the meta-learners; mistakes name the key and the line.
  func testRefitAndMetaLearnerSettings() throws {
    let base = "name: x\ndata:\n  train: y\ngrid:\n  seed: [0, 1]\n"
    let all = try Experiment.parse(base + "refit: true\n", file: "exp.yaml")
    XCTAssertEqual(all.refit, RefitPlan(variants: ["seed-0", "seed-1"], submit: true))
    XCTAssertEqual(all.refit?.taskIDs, ["seed-0/all", "seed-1/all"])
    XCTAssertNil(try Experiment.parse(base + "refit: false\n", file: "exp.yaml").refit)
    let one = try Experiment.parse(base + "refit: {variants: [seed-1], submit: false}\nensemble: {mlp_hidden: 0, mlp_l2: 0.5}\n", file: "exp.yaml")
    XCTAssertEqual(one.refit, RefitPlan(variants: ["seed-1"], submit: false))
    XCTAssertEqual(one.ensemble.mlpHidden, 0)
    XCTAssertEqual(one.ensemble.mlpL2, 0.5)
    assertError(base + "refit:\n  variants: [seed-2]\n", line: 7, mentions: ["refit variant \"seed-2\"", "seed-0, seed-1"])
    assertError(base + "refit: {submitt: true}\n", line: 6, mentions: ["unknown refit setting \"submitt\""])
    assertError(base + "refit: 3\n", line: 6, mentions: ["\"refit\" must be true, false or a mapping"])
    assertError(base + "ensemble: {mlp_hidden: -1}\n", line: 6, mentions: ["mlp_hidden", "0…4096"])
    XCTAssertEqual(try Experiment.parse(base + "ensemble: {weights: {seed-0: 2, seed-1: 0.5}}\n", file: "exp.yaml").ensemble.userWeights, ["seed-0": 2, "seed-1": 0.5])
    assertError(base + "ensemble: {weights: {seed-7: 1}}\n", line: nil, mentions: ["ensemble weights name \"seed-7\"", "seed-0, seed-1"])
    assertError(base + "ensemble: {weights: {seed-0: -1}}\n", line: 6, mentions: ["\"seed-0\" needs a weight ≥ 0"])
  }

  func testFoldsFromAFileAndTheShippedExample() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try FoldAssignment(fold: [0, 1, 2, 3, 0, 1, 2, 3], count: 4).write(to: folder + "/folds.npy")
    let experiment = try Experiment.parse("name: x\ndata: {train: y}\nfolds: {file: \(folder)/folds.npy}\n", file: "exp.yaml")
    XCTAssertEqual(experiment.foldCount, 4)
    assertError("name: x\ndata: {train: y}\nfolds: {file: \(folder)/absent.npy}\n", line: 3, mentions: ["folds.file", "absent.npy"])
    // The example the README and `quorum plan` use parses: 4 variants × 5 folds.
    let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples/fmnist-lt.yaml").path
    let shipped = try Experiment.read(example)
    XCTAssertEqual(shipped.variants.count, 4)  // 2 seeds × balanced softmax on and off
    XCTAssertEqual(shipped.tasks.count, 20)
  }
}
