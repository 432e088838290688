import ArgumentParser
import CUDA
import Data
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

  // MARK: Model
  @Option(help: "Stride preset: imagenet (stem 2, stages 1,2,2,2,1,2,1) or cifar (stem 1, stages 1,1,2,2,1,2,1).")
  var preset: MobileNetV2Configuration.Preset = .imagenet
  @Option(help: "Width multiplier (channels × width, rounded to multiples of 8).")
  var width: Double = 1.0
  @Option(help: "Override the stem's stride (1 or 2).")
  var stemStride: Int?
  @Option(help: ArgumentHelp("Override the seven stage strides.", valueName: "s1,…,s7"))
  var stageStrides: String?
  @Option(help: "Dropout probability before the classifier.")
  var dropout: Float = 0.2
  @Option(help: "Stochastic depth: drop probability of the last residual block (earlier blocks scale linearly).")
  var stochasticDepth: Float = 0

  // MARK: Optimisation
  @Option(help: "Number of epochs.") var epochs: Int = 15
  @Option(help: "Mini-batch size.") var batchSize: Int = 128
  @Option(help: """
    How an epoch is cut into batches: even (as few batches as hold it, sizes differing by one at most) or ragged (full \
    batches and the rest last, as PyTorch's DataLoader with drop_last=False).
    """)
  var batching: Batching = .even
  @Option(help: "sgd (momentum, PyTorch's L2 weight decay) or adamw (decoupled weight decay).")
  var optimizer: TrainingConfiguration.OptimizerKind = .sgd
  @Option(help: "Peak learning rate.") var learningRate: Double = 0.1
  @Option(help: "SGD momentum.") var momentum: Float = 0.9
  @Flag(inversion: .prefixedNo, help: "Nesterov momentum for SGD.") var nesterov = true
  @Flag(help: "one-cycle: cycle SGD's momentum as PyTorch's OneCycleLR does by default, 0.95 → 0.85 at the peak → 0.95 (in place of --momentum).")
  var cycleMomentum = false
  @Option(help: "Weight decay (never on batch-norm parameters or biases).") var weightDecay: Float = 5e-4
  @Option(help: "Learning-rate schedule: one-cycle, warmup-cosine, step, plateau or constant.")
  var schedule: ScheduleName = .oneCycle
  @Option(help: "Warm-up share of all steps for one-cycle and warmup-cosine.") var warmup: Double = 0.15
  @Option(help: "step: multiply the rate by --decay-factor every this many epochs.") var stepEpochs: Int = 5
  @Option(help: "Factor of the step and plateau schedules.") var decayFactor: Double = 0.1
  @Option(help: "plateau: epochs without improvement before the rate is lowered.") var plateauPatience: Int = 2
  @Option(help: "Label smoothing ε.") var labelSmoothing: Float = 0.1
  @Option(help: ArgumentHelp(
    "Per-class loss weights: none, inverse-frequency, effective-number (Cui et al., β from --effective-number-beta), or a comma-separated list.",
    valueName: "weights"))
  var classWeights: String = "none"
  @Option(help: "β of the effective-number class weights.") var effectiveNumberBeta: Double = 0.9999
  @Option(help: "Deferred re-weighting: apply the class weights from this epoch on (DRW; e.g. 0.8 × epochs).")
  var reweightFromEpoch: Int?
  @Option(help: "How epochs draw examples: shuffle, class-balanced (classes equally likely) or square-root (∝ √n_c).")
  var sampling: Sampling = .shuffle
  @Option(help: "Repeat every class with fewer examples up to this count per epoch, each copy augmented afresh.")
  var growClassesTo: Int?
  @Option(help: "Logit adjustment τ: train on logits + τ·log(class prior); 1 is balanced softmax, 0 off.")
  var logitAdjustment: Double = 0
  @Option(help: "Focal loss γ (0: cross-entropy).") var focalGamma: Float = 0
  @Option(help: "Clip the global gradient norm to this value.") var clipNorm: Float?
  @Option(help: "Keep an exponential moving average of the weights with this decay (e.g. 0.999) and evaluate with it.")
  var emaDecay: Float?
  @Option(help: "Random shift in pixels (zero padding) for augmentation; 0 disables.") var shift: Int = 2
  @Option(help: "Probability of a horizontal flip for augmentation.") var flip: Double = 0.5
  @Option(help: "Probability of a vertical flip.") var verticalFlip: Double = 0
  @Option(help: "Random rotation up to ± this many degrees (bilinear, zero outside).") var rotation: Double = 0
  @Option(help: "Random scaling by up to ± this fraction (e.g. 0.1).") var scale: Double = 0
  @Option(help: "Random shear up to ± this many degrees.") var shear: Double = 0
  @Option(help: "Probability of random erasing (one rectangle of 2–33 % of the image).") var erasing: Double = 0
  @Option(help: "Elastic distortion α: displacement scale in pixels (e.g. 8 for 28×28; 0 off).") var elasticAlpha: Double = 0
  @Option(help: "Elastic distortion σ: smoothness of the displacement field in pixels.") var elasticSigma: Double = 4
  @Option(help: "Random resized crop: the smallest share of the image's area a crop keeps (e.g. 0.08 as ImageNet's recipes, 0.35 for small images; aspect 3/4…4/3; 0 off).")
  var resizedCrop: Double = 0
  @Option(help: "Colour jitter: brightness factor uniform in 1 ± this (e.g. 0.4; 0 off).") var brightness: Double = 0
  @Option(help: "Colour jitter: contrast factor uniform in 1 ± this.") var contrast: Double = 0
  @Option(help: "Colour jitter: saturation factor uniform in 1 ± this (colour images).") var saturation: Double = 0
  @Option(help: "Mixup α (e.g. 0.2; 0 off): blend each batch with itself reversed, labels as soft targets.") var mixup: Double = 0
  @Option(help: "CutMix α (e.g. 1; 0 off): paste a box of the reversed batch; with --mixup too, each batch picks one.")
  var cutmix: Double = 0
  @Option(help: "Probability that a batch is mixed.") var mixProbability: Double = 1
  @Flag(help: "Test-time augmentation: average the final predictions over left-right flips.") var ttaFlips = false
  @Option(help: "Test-time augmentation: also average over shifts by this many pixels in the four directions.")
  var ttaShift: Int = 0

  // MARK: Fine-tuning
  @Option(help: "Start from the weights of this checkpoint (Quorum's, of any class count or input channels, or torchvision's mobilenet_v2 state dict as safetensors): the classifier is new where the classes differ, the stem adapted where the channels do.") var initializeFrom: String?
  @Flag(help: "With --initialize-from: start the classifier afresh even where the file's has as many classes (other labels).")
  var newClassifier = false
  @Option(help: ArgumentHelp(
    "Train only the classifier for the first EPOCHS epochs (the features frozen, their batch norms in evaluation mode), then everything; EPOCHS = --epochs never unfreezes (a linear probe).",
    valueName: "body:EPOCHS"))
  var freeze: FreezeSpelling?
  @Option(help: "Normalise the inputs by the training images' channel statistics (dataset) or ImageNet's (imagenet: for torchvision's pretrained weights).")
  var normalization: InputNormalization = .dataset
  @Option(help: "Layer-wise learning-rate decay: each layer below the classifier trains at this factor of the rate of the one above (e.g. 0.7).")
  var layerDecay: Float?

  // MARK: Selection and run
  @Option(help: "Validation metric that picks the best epoch and drives early stopping and reduce-on-plateau: \(Metric.spellings).")
  var selectBy: Metric = .accuracy
  @Option(help: "Stop after this many epochs without validation improvement.") var earlyStopping: Int?
  @Flag(inversion: .prefixedNo, help: "Restore the best validation epoch's weights at the end.") var restoreBest = true
  @Option(help: "Score the test set every N epochs (0: only at the end; its logits are made there anyway).")
  var testEvery: Int = 1
  @Option(help: "Seed of initialisation, shuffling, augmentation, dropout and the validation split.") var seed: UInt64 = 0
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

  enum ScheduleName: String, ExpressibleByArgument, CaseIterable {
    case oneCycle = "one-cycle", warmupCosine = "warmup-cosine", step, plateau, constant
  }
  enum ProgressName: String, ExpressibleByArgument, CaseIterable { case auto, bar, lines, none }

  func validate() throws {
    if newClassifier && initializeFrom == nil { throw ValidationError("--new-classifier needs --initialize-from (the weights whose classifier it replaces)") }
    if device.isSeveralDevices {
      throw ValidationError("--device \(device): quorum train trains one model on one device; name one GPU (cuda:N), or serve them all with quorum worker --device \(device)")
    }
    if let problem = device.unavailability() {
      throw ValidationError("--device \(device): \(problem); use --device cpu (or cuda-emulated to check the CUDA backend on the CPU)")
    }
  }

  func run() throws {
    guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    if let saveEvery, saveEvery < 1 { throw ValidationError("--save-every must be at least 1 epoch, got \(saveEvery)") }
    let style: ProgressReporter.Style? = [.bar: .bar, .lines: .lines, .none: .silent][progress]
    let reporter = ProgressReporter(style: style, totalEpochs: epochs)
    let data = try dataOptions.load(seed: seed, output: output, log: reporter.message)
    var configuration = TrainingConfiguration(
      model: try modelConfiguration(
        classes: dataOptions.classes ?? data.training.classes, height: data.training.height, width: data.training.width,
        channels: data.training.channels))
    configuration.epochs = epochs
    configuration.batchSize = batchSize
    configuration.batching = batching
    configuration.optimizer = optimizer
    configuration.learningRate = learningRate
    configuration.momentum = momentum
    configuration.nesterov = nesterov
    configuration.momentumCycle = cycleMomentum ? MomentumCycle() : nil
    configuration.weightDecay = weightDecay
    configuration.schedule = try scheduleValue()
    configuration.labelSmoothing = labelSmoothing
    configuration.classWeighting = try classWeighting()
    configuration.reweightFromEpoch = reweightFromEpoch
    configuration.sampling = sampling
    configuration.growClassesTo = growClassesTo
    configuration.logitAdjustment = logitAdjustment
    configuration.focalGamma = focalGamma
    configuration.gradientClipNorm = clipNorm
    configuration.emaDecay = emaDecay
    configuration.augmentation = Augmentation(
      shift: shift, horizontalFlip: flip, verticalFlip: verticalFlip, rotation: rotation, scale: scale, shear: shear,
      erasing: erasing, elasticAlpha: elasticAlpha, elasticSigma: elasticSigma, resizedCrop: resizedCrop, brightness: brightness,
      contrast: contrast, saturation: saturation)
    configuration.testTimeAugmentation = TestTimeAugmentation(flips: ttaFlips, shift: ttaShift)
    configuration.mixing = Mixing(mixup: mixup, cutmix: cutmix, probability: mixProbability)
    configuration.seed = seed
    configuration.selectionMetric = selectBy
    configuration.earlyStoppingPatience = earlyStopping
    configuration.restoreBest = restoreBest
    configuration.testEvaluationInterval = testEvery == 1 ? nil : testEvery
    configuration.initialization = initializeFrom.map { .init(path: $0, newClassifier: newClassifier) }
    configuration.freezeBodyEpochs = freeze?.epochs
    configuration.layerDecay = layerDecay
    configuration.normalization = normalization

    let backend = try device.makeBackend(threads: threads)
    let trainer = try Trainer(
      configuration: configuration, data: data, backend: backend, threads: threads, outputFolder: output, reporter: reporter,
      prefetch: prefetch, prefetchThreads: prefetchThreads, holdImages: deviceData, recordSteps: cudaGraphs)
    reporter.message(
      "MobileNetV2 \(preset.rawValue) width \(width): \(trainer.model.parameterCount) parameters on \(backend.name)"
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

  func modelConfiguration(classes: Int, height: Int, width imageWidth: Int, channels: Int) throws -> MobileNetV2Configuration {
    var strides: [Int]?
    if let stageStrides {
      strides = try stageStrides.split(separator: ",").map {
        guard let value = Int($0.trimmingCharacters(in: .whitespaces)) else {
          throw ValidationError("--stage-strides: \"\($0)\" is not a number")
        }
        return value
      }
    }
    return MobileNetV2Configuration(
      preset: preset, width: width, inputChannels: channels, classes: classes, imageHeight: height, imageWidth: imageWidth,
      stemStride: stemStride,
      stageStrides: strides, dropout: dropout, stochasticDepth: stochasticDepth)
  }

  func scheduleValue() throws -> LearningRateSchedule {
    switch schedule {
    case .oneCycle: return .oneCycle(warmupFraction: warmup)
    case .warmupCosine: return .warmupCosine(warmupFraction: warmup)
    case .step: return .step(epochs: stepEpochs, factor: decayFactor)
    case .plateau:
      guard dataOptions.validationFraction > 0 || dataOptions.validationImages != nil || dataOptions.folds != nil else {
        throw ValidationError("--schedule plateau needs a validation set (--validation-fraction > 0)")
      }
      return .reduceOnPlateau(factor: decayFactor, patience: plateauPatience)
    case .constant: return .constant
    }
  }

  func classWeighting() throws -> ClassWeighting {
    switch classWeights {
    case "none": return .none
    case "inverse-frequency": return .inverseFrequency
    case "effective-number": return .effectiveNumber(beta: effectiveNumberBeta)
    default:
      return .explicit(try classWeights.split(separator: ",").map {
        guard let value = Float($0.trimmingCharacters(in: .whitespaces)), value >= 0 else {
          throw ValidationError("--class-weights: \"\($0)\" is not a non-negative number")
        }
        return value
      })
    }
  }
}

extension MobileNetV2Configuration.Preset: ExpressibleByArgument {}
extension ComputeDevice: ExpressibleByArgument {
  public init?(argument: String) { self.init(argument) }
  public static var defaultCompletionKind: CompletionKind { .list(["cpu", "auto", "cuda", "cuda:0", "cuda:all", "cuda-emulated"]) }
}
extension TrainingConfiguration.OptimizerKind: ExpressibleByArgument {}
extension Metric: ExpressibleByArgument {
  public init?(argument: String) { self.init(argument) }
  public var defaultValueDescription: String { spelling }
}
extension Sampling: ExpressibleByArgument {}
extension Batching: ExpressibleByArgument {}
extension InputNormalization: ExpressibleByArgument {}

/// `--freeze`'s value: `body:EPOCHS`.
struct FreezeSpelling: ExpressibleByArgument {
  var epochs: Int
  init?(argument: String) {
    guard let epochs = TrainingConfiguration.frozenBodyEpochs(argument) else { return nil }
    self.epochs = epochs
  }
}
