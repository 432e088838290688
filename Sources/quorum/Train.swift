import ArgumentParser
import CUDA
import Data
import Experiment
import Foundation
import NN
import Tensor
import Training

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train one MobileNetV2 and write its checkpoint, logits and metrics.",
    discussion: """
      Writes to --output: model.safetensors (torchvision mobilenet_v2 names and layouts), \
      validation.logits.npy and test.logits.npy (float32 [n, classes]), metrics.json (every \
      epoch's scores), best.safetensors and state.safetensors (for --resume). Defaults are \
      the reference recipe: SGD + Nesterov 0.9, one-cycle to 0.1, weight decay 5e-4, batch \
      128, label smoothing 0.1, dropout 0.2, shift ±2 px and horizontal flips.
      """)

  @OptionGroup(title: "Data") var dataOptions: DataOptions

  // The training settings: one option per entry of the settings table (TrainingSettings), its
  // help and default from there, its value read and applied there as an experiment's key is.
  // MARK: Model
  @Option(help: settingHelp("preset")) var preset: String?
  @Option(help: settingHelp("width")) var width: String?
  @Option(help: settingHelp("stem_stride")) var stemStride: String?
  @Option(help: settingHelp("stage_strides")) var stageStrides: String?
  @Option(help: settingHelp("dropout")) var dropout: String?
  @Option(help: settingHelp("stochastic_depth")) var stochasticDepth: String?

  // MARK: Optimisation
  @Option(help: settingHelp("epochs")) var epochs: String?
  @Option(help: settingHelp("batch_size")) var batchSize: String?
  @Option(help: settingHelp("batching")) var batching: String?
  @Option(help: settingHelp("optimizer")) var optimizer: String?
  @Option(help: settingHelp("learning_rate")) var learningRate: String?
  @Option(help: settingHelp("momentum")) var momentum: String?
  @Flag(inversion: .prefixedNo, help: settingHelp("nesterov")) var nesterov: Bool?
  @Flag(inversion: .prefixedNo, help: settingHelp("cycle_momentum")) var cycleMomentum: Bool?
  @Option(help: settingHelp("weight_decay")) var weightDecay: String?
  @Option(help: settingHelp("schedule")) var schedule: String?
  @Option(help: settingHelp("warmup")) var warmup: String?
  @Option(help: settingHelp("step_epochs")) var stepEpochs: String?
  @Option(help: settingHelp("decay_factor")) var decayFactor: String?
  @Option(help: settingHelp("plateau_patience")) var plateauPatience: String?
  @Option(help: settingHelp("label_smoothing")) var labelSmoothing: String?
  @Option(help: settingHelp("clip_norm")) var clipNorm: String?
  @Option(help: settingHelp("ema_decay")) var emaDecay: String?
  @Option(help: settingHelp("seed")) var seed: String?

  // MARK: Imbalance
  @Option(help: settingHelp("class_weights")) var classWeights: String?
  @Option(help: settingHelp("effective_number_beta")) var effectiveNumberBeta: String?
  @Option(help: settingHelp("reweight_from_epoch")) var reweightFromEpoch: String?
  @Option(help: settingHelp("sampling")) var sampling: String?
  @Option(help: settingHelp("grow_classes_to")) var growClassesTo: String?
  @Option(help: settingHelp("logit_adjustment")) var logitAdjustment: String?
  @Option(help: settingHelp("focal_gamma")) var focalGamma: String?

  // MARK: Augmentation
  @Option(help: settingHelp("shift")) var shift: String?
  @Option(help: settingHelp("flip")) var flip: String?
  @Option(help: settingHelp("vertical_flip")) var verticalFlip: String?
  @Option(help: settingHelp("rotation")) var rotation: String?
  @Option(help: settingHelp("scale")) var scale: String?
  @Option(help: settingHelp("shear")) var shear: String?
  @Option(help: settingHelp("erasing")) var erasing: String?
  @Option(help: settingHelp("elastic_alpha")) var elasticAlpha: String?
  @Option(help: settingHelp("elastic_sigma")) var elasticSigma: String?
  @Option(help: settingHelp("resized_crop")) var resizedCrop: String?
  @Option(help: settingHelp("brightness")) var brightness: String?
  @Option(help: settingHelp("contrast")) var contrast: String?
  @Option(help: settingHelp("saturation")) var saturation: String?
  @Option(help: settingHelp("mixup")) var mixup: String?
  @Option(help: settingHelp("cutmix")) var cutmix: String?
  @Option(help: settingHelp("mix_probability")) var mixProbability: String?

  // MARK: Evaluation
  @Flag(inversion: .prefixedNo, help: settingHelp("tta_flips")) var ttaFlips: Bool?
  @Option(help: settingHelp("tta_shift")) var ttaShift: String?
  @Option(help: settingHelp("select_by")) var selectBy: String?
  @Option(help: settingHelp("early_stopping")) var earlyStopping: String?

  // MARK: Fine-tuning
  @Option(help: settingHelp("initialize_from")) var initializeFrom: String?
  @Flag(inversion: .prefixedNo, help: settingHelp("new_classifier")) var newClassifier: Bool?
  @Option(help: settingHelp("freeze")) var freeze: String?
  @Option(help: settingHelp("normalization")) var normalization: String?
  @Option(help: settingHelp("layer_decay")) var layerDecay: String?

  // MARK: Run
  @Flag(inversion: .prefixedNo, help: "Restore the best validation epoch's weights at the end.") var restoreBest = true
  @Option(help: "Score the test set every N epochs (0: only at the end; its logits are made there anyway).")
  var testEvery: Int = 1
  @Option(help: "CPU threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
  @Option(
    help: """
      cpu; cuda or cuda:N, the CUDA backend (float32) on that GPU; or cuda-emulated (cuda-emulated:N), the CUDA backend on the emulated \
      device (its kernels run on the CPU, with its checks; QUORUM_EMULATOR_CHECKS=fast skips the race check), for \
      checking, not for speed. See docs/cuda.md.
      """)
  var device: ComputeDevice = .cpu
  @Flag(inversion: .prefixedNo, help: "Assemble the next batch on a background thread while one trains (same result either way).")
  var prefetch = true
  @Option(help: "Threads that assemble prefetched batches (more for a GPU that one core cannot feed).")
  var prefetchThreads: Int = 1
  @Flag(
    inversion: .prefixedNo,
    help: """
      On a CUDA device, keep the images in device memory and assemble each batch there (the same batches; only the \
      shifts, flips and erased rectangles cross the bus). Off: the host assembles them, as on the CPU.
      """)
  var deviceData = true
  @Flag(
    inversion: .prefixedNo,
    help: """
      On a CUDA device, record the training step once as a CUDA graph and replay it (one launch a step instead of \
      hundreds; the same bits). Off: every operation is launched one by one.
      """)
  var cudaGraphs = true
  @Option(help: "Run folder for checkpoints, logits and metrics.") var output: String = "runs/train"
  @Flag(help: "Continue from --output's state.safetensors, bit-exactly, if it exists.") var resume = false
  @Option(help: ArgumentHelp(
    "Write a JSON line per step to this file: epoch, step, batch, learning rate, momentum, loss and the gradient norm before clipping.",
    valueName: "file"))
  var stepLog: String?
  @Option(help: "Also keep the weights after every N epochs as epoch-N.safetensors in --output.")
  var saveEvery: Int?
  @Option(help: "Progress display: auto (a bar on a terminal, lines otherwise), bar, lines or none.")
  var progress: ProgressName = .auto

  @Flag(help: "Print the training configuration that these flags and the data make, as JSON, and exit without training or writing a file.")
  var printConfiguration = false

  enum ProgressName: String, ExpressibleByArgument, CaseIterable { case auto, bar, lines, none }

  /// The settings this command was given, keyed as the table is.
  var givenSettings: [(key: String, value: SettingValue)] {
    let texts: [(String, String?)] = [
      ("preset", preset), ("width", width), ("stem_stride", stemStride), ("stage_strides", stageStrides), ("dropout", dropout),
      ("stochastic_depth", stochasticDepth), ("epochs", epochs), ("batch_size", batchSize), ("batching", batching),
      ("optimizer", optimizer), ("learning_rate", learningRate), ("momentum", momentum), ("weight_decay", weightDecay),
      ("schedule", schedule), ("warmup", warmup), ("step_epochs", stepEpochs), ("decay_factor", decayFactor),
      ("plateau_patience", plateauPatience), ("label_smoothing", labelSmoothing), ("clip_norm", clipNorm),
      ("ema_decay", emaDecay), ("seed", seed), ("class_weights", classWeights), ("effective_number_beta", effectiveNumberBeta),
      ("reweight_from_epoch", reweightFromEpoch), ("sampling", sampling), ("grow_classes_to", growClassesTo),
      ("logit_adjustment", logitAdjustment), ("focal_gamma", focalGamma), ("shift", shift), ("flip", flip),
      ("vertical_flip", verticalFlip), ("rotation", rotation), ("scale", scale), ("shear", shear), ("erasing", erasing),
      ("elastic_alpha", elasticAlpha), ("elastic_sigma", elasticSigma), ("resized_crop", resizedCrop),
      ("brightness", brightness), ("contrast", contrast), ("saturation", saturation), ("mixup", mixup), ("cutmix", cutmix),
      ("mix_probability", mixProbability), ("tta_shift", ttaShift), ("select_by", selectBy), ("early_stopping", earlyStopping),
      ("initialize_from", initializeFrom), ("freeze", freeze), ("normalization", normalization), ("layer_decay", layerDecay),
    ]
    let switches: [(String, Bool?)] = [
      ("nesterov", nesterov), ("cycle_momentum", cycleMomentum), ("tta_flips", ttaFlips), ("new_classifier", newClassifier),
    ]
    return texts.compactMap { key, text in text.map { (key, TrainingSettings.named(key).value(ofFlag: $0)) } }
      + switches.compactMap { key, on in on.map { (key, SettingValue(kind: .flag($0), line: nil)) } }
  }

  /// `TrainingConfiguration`'s defaults with the given settings applied, a mismatch named
  /// by its flag; the model's input and classes are the data's, set once it is loaded.
  func configured() throws -> TrainingConfiguration {
    var configuration = TrainingConfiguration(model: MobileNetV2Configuration())
    do { try TrainingSettings.apply(givenSettings, to: &configuration) } catch let mismatch as TrainingSettingMismatch {
      throw ValidationError("\(TrainingSettings.named(mismatch.key).flag) must be \(mismatch.expected), got \(mismatch.value)")
    }
    configuration.restoreBest = restoreBest
    configuration.testEvaluationInterval = testEvery == 1 ? nil : testEvery
    return configuration
  }

  func validate() throws {
    if device.isSeveralDevices {
      throw ValidationError("--device \(device): quorum train trains one model on one device; name one GPU (cuda:N), or serve them all with quorum worker --device \(device)")
    }
    if let problem = device.unavailability() {
      throw ValidationError("--device \(device): \(problem); use --device cpu (or cuda-emulated to check the CUDA backend on the CPU)")
    }
    // A setting that does not fit is refused before any data loads.
    _ = try configured()
  }

  func run() throws {
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    if let saveEvery, saveEvery < 1 { throw ValidationError("--save-every must be at least 1 epoch, got \(saveEvery)") }
    var configuration = try configured()
    let style: ProgressReporter.Style? = printConfiguration ? .silent : [.bar: .bar, .lines: .lines, .none: .silent][progress]
    let reporter = ProgressReporter(style: style, totalEpochs: configuration.epochs)
    let data = try dataOptions.load(seed: configuration.seed, output: printConfiguration ? nil : output, log: reporter.message)
    configuration.model.inputChannels = data.training.channels
    configuration.model.classes = dataOptions.classes ?? data.training.classes
    configuration.model.imageHeight = data.training.height
    configuration.model.imageWidth = data.training.width
    if case .reduceOnPlateau = configuration.schedule, data.validation == nil {
      throw ValidationError("--schedule plateau needs a validation set (--validation-fraction > 0, --validation-images or --folds)")
    }
    if printConfiguration {
      try configuration.validate()
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
      print(String(decoding: try encoder.encode(configuration), as: UTF8.self))
      return
    }

    let backend = try device.makeBackend(threads: threads)
    let trainer = try Trainer(
      configuration: configuration, data: data, backend: backend, threads: threads, outputFolder: output, reporter: reporter,
      prefetch: prefetch, prefetchThreads: prefetchThreads, holdImages: deviceData, recordSteps: cudaGraphs)
    reporter.message(
      "MobileNetV2 \(configuration.model.presetName) width \(configuration.model.width): \(trainer.model.parameterCount) parameters on \(backend.name)"
        + (trainer.holdsImages ? ", the images held in device memory" : "")
        + (backend is CPUBackend ? ", \(GEMMLibrary.summary().line)" : ""))
    trainer.stepLogPath = stepLog
    trainer.snapshotInterval = saveEvery
    let result = try trainer.run(resume: resume)
    if let test = result.test {
      reporter.message(String(
        format: "test: accuracy %.4f  balanced %.4f  macro-F1 %.4f  lowest recall %.3f  nll %.4f", test.accuracy,
        test.balancedAccuracy, test.macroF1, test.lowestRecall, test.negativeLogLikelihood))
    }
    reporter.message("wrote \(output)/model.safetensors, metrics.json and logits")
  }
}

/// `--help`'s text of a training setting, from the settings table.
func settingHelp(_ key: String) -> ArgumentHelp {
  let setting = TrainingSettings.named(key)
  return ArgumentHelp(setting.help, valueName: setting.valueName)
}

extension MobileNetV2Configuration.Preset: ExpressibleByArgument {}
extension ComputeDevice: ExpressibleByArgument {
  public init?(argument: String) { self.init(argument) }
  public static var defaultCompletionKind: CompletionKind { .list(["cpu", "auto", "cuda", "cuda:0", "cuda:all", "cuda-emulated"]) }
}
