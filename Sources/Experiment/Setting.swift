import Data
import NN
import Training

/// A value from the experiment file, with the line it came from.
public struct SettingValue: Equatable, CustomStringConvertible {
  public enum Kind: Equatable {
    case number(Double)
    case text(String)
    case flag(Bool)
    case list([SettingValue])
  }

  public var kind: Kind
  public var line: Int?

  public init(kind: Kind, line: Int?) {
    self.kind = kind
    self.line = line
  }

  public var description: String {
    switch kind {
    case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    case .text(let value): return value
    case .flag(let value): return String(value)
    case .list(let values): return "[" + values.map(\.description).joined(separator: ", ") + "]"
    }
  }
}

/// The training settings an experiment may set, named as `quorum train`'s flags with
/// underscores (`learning_rate` for `--learning-rate`), each with how it applies.
enum TrainingSettings {
  typealias Apply = (SettingValue, inout TrainingConfiguration) throws -> Void

  struct Mismatch: Error { let expected: String }

  static func number(_ value: SettingValue) throws -> Double {
    // YAML reads .inf and .nan as numbers; no setting means either.
    guard case .number(let number) = value.kind, number.isFinite else { throw Mismatch(expected: "a finite number") }
    return number
  }
  /// A whole number that fits an Int exactly (past 2⁵³ a double no longer holds every one,
  /// and past 2⁶³ the conversion would trap).
  static func integer(_ value: SettingValue) throws -> Int {
    let number = try number(value)
    guard number == number.rounded(), abs(number) <= 9_007_199_254_740_992 else { throw Mismatch(expected: "a whole number") }
    return Int(number)
  }
  static func text(_ value: SettingValue) throws -> String {
    guard case .text(let text) = value.kind else { throw Mismatch(expected: "text") }
    return text
  }
  static func flag(_ value: SettingValue) throws -> Bool {
    guard case .flag(let flag) = value.kind else { throw Mismatch(expected: "true or false") }
    return flag
  }
  static func choice<T: RawRepresentable>(_ value: SettingValue, _ type: T.Type, _ names: [String]) throws -> T where T.RawValue == String {
    guard let choice = T(rawValue: try text(value)) else { throw Mismatch(expected: "one of " + names.joined(separator: ", ")) }
    return choice
  }

  static let all: [String: Apply] = [
    "epochs": { value, config in config.epochs = try integer(value) },
    "batch_size": { value, config in config.batchSize = try integer(value) },
    "batching": { value, config in config.batching = try choice(value, Batching.self, Batching.allCases.map(\.rawValue)) },
    "preset": { value, config in
      let preset = try choice(value, MobileNetV2Configuration.Preset.self, ["imagenet", "cifar"])
      config.model.stemStride = preset.stemStride
      config.model.stageStrides = preset.stageStrides
    },
    "width": { value, config in config.model.width = try number(value) },
    "stem_stride": { value, config in config.model.stemStride = try integer(value) },
    "stage_strides": { value, config in
      guard case .list(let values) = value.kind else { throw Mismatch(expected: "a list of 7 strides") }
      config.model.stageStrides = try values.map(integer)
    },
    "dropout": { value, config in config.model.dropout = Float(try number(value)) },
    "stochastic_depth": { value, config in config.model.stochasticDepth = Float(try number(value)) },
    "optimizer": { value, config in config.optimizer = try choice(value, TrainingConfiguration.OptimizerKind.self, ["sgd", "adamw"]) },
    "learning_rate": { value, config in config.learningRate = try number(value) },
    "momentum": { value, config in config.momentum = Float(try number(value)) },
    "nesterov": { value, config in config.nesterov = try flag(value) },
    "cycle_momentum": { value, config in config.momentumCycle = try flag(value) ? MomentumCycle() : nil },
    "weight_decay": { value, config in config.weightDecay = Float(try number(value)) },
    "schedule": { value, config in
      switch try text(value) {
      case "one-cycle": config.schedule = .oneCycle(warmupFraction: 0.15)
      case "warmup-cosine": config.schedule = .warmupCosine(warmupFraction: 0.15)
      case "constant": config.schedule = .constant
      case "step": config.schedule = .step(epochs: 5, factor: 0.1)
      case "plateau": config.schedule = .reduceOnPlateau(factor: 0.1, patience: 2)
      default: throw Mismatch(expected: "one of one-cycle, warmup-cosine, step, plateau, constant")
      }
    },
    // The schedule's and the class weights' parameters, applied after `schedule` and
    // `class_weights` whatever their order in the file (`ordered`), as `quorum train`'s
    // --warmup, --step-epochs, --decay-factor, --plateau-patience and --effective-number-beta.
    "warmup": { value, config in
      let fraction = try number(value)
      switch config.schedule {
      case .oneCycle: config.schedule = .oneCycle(warmupFraction: fraction)
      case .warmupCosine: config.schedule = .warmupCosine(warmupFraction: fraction)
      default: throw Mismatch(expected: "set with schedule one-cycle or warmup-cosine (the schedules that warm up)")
      }
    },
    "step_epochs": { value, config in
      guard case .step(_, let factor) = config.schedule else { throw Mismatch(expected: "set with schedule step") }
      config.schedule = .step(epochs: try integer(value), factor: factor)
    },
    "decay_factor": { value, config in
      switch config.schedule {
      case .step(let epochs, _): config.schedule = .step(epochs: epochs, factor: try number(value))
      case .reduceOnPlateau(_, let patience): config.schedule = .reduceOnPlateau(factor: try number(value), patience: patience)
      default: throw Mismatch(expected: "set with schedule step or plateau")
      }
    },
    "plateau_patience": { value, config in
      guard case .reduceOnPlateau(let factor, _) = config.schedule else { throw Mismatch(expected: "set with schedule plateau") }
      config.schedule = .reduceOnPlateau(factor: factor, patience: try integer(value))
    },
    "effective_number_beta": { value, config in
      guard case .effectiveNumber = config.classWeighting else { throw Mismatch(expected: "set with class_weights effective-number") }
      config.classWeighting = .effectiveNumber(beta: try number(value))
    },
    "label_smoothing": { value, config in config.labelSmoothing = Float(try number(value)) },
    "class_weights": { value, config in
      if case .list(let values) = value.kind { config.classWeighting = .explicit(try values.map { Float(try number($0)) }); return }
      switch try text(value) {
      case "none": config.classWeighting = .none
      case "inverse-frequency": config.classWeighting = .inverseFrequency
      case "effective-number": config.classWeighting = .effectiveNumber(beta: 0.9999)
      default: throw Mismatch(expected: "none, inverse-frequency, effective-number or a list")
      }
    },
    "reweight_from_epoch": { value, config in config.reweightFromEpoch = try integer(value) },
    "sampling": { value, config in config.sampling = try choice(value, Sampling.self, Sampling.allCases.map(\.rawValue)) },
    "grow_classes_to": { value, config in config.growClassesTo = try integer(value) },
    "logit_adjustment": { value, config in config.logitAdjustment = try number(value) },
    "focal_gamma": { value, config in config.focalGamma = Float(try number(value)) },
    "mixup": { value, config in config.mixing.mixup = try number(value) },
    "cutmix": { value, config in config.mixing.cutmix = try number(value) },
    "mix_probability": { value, config in config.mixing.probability = try number(value) },
    "shift": { value, config in config.augmentation.shift = try integer(value) },
    "flip": { value, config in config.augmentation.horizontalFlip = try number(value) },
    "vertical_flip": { value, config in config.augmentation.verticalFlip = try number(value) },
    "rotation": { value, config in config.augmentation.rotation = try number(value) },
    "scale": { value, config in config.augmentation.scale = try number(value) },
    "shear": { value, config in config.augmentation.shear = try number(value) },
    "erasing": { value, config in config.augmentation.erasing = try number(value) },
    "elastic_alpha": { value, config in config.augmentation.elasticAlpha = try number(value) },
    "elastic_sigma": { value, config in config.augmentation.elasticSigma = try number(value) },
    "normalization": { value, config in
      config.normalization = try choice(value, InputNormalization.self, InputNormalization.allCases.map(\.rawValue))
    },
    "resized_crop": { value, config in config.augmentation.resizedCrop = try number(value) },
    "brightness": { value, config in config.augmentation.brightness = try number(value) },
    "contrast": { value, config in config.augmentation.contrast = try number(value) },
    "saturation": { value, config in config.augmentation.saturation = try number(value) },
    "tta_flips": { value, config in config.testTimeAugmentation.flips = try flag(value) },
    "tta_shift": { value, config in config.testTimeAugmentation.shift = try integer(value) },
    "clip_norm": { value, config in config.gradientClipNorm = Float(try number(value)) },
    "ema_decay": { value, config in config.emaDecay = Float(try number(value)) },
    "seed": { value, config in
      let seed = try integer(value)
      guard seed >= 0 else { throw Mismatch(expected: "a whole number ≥ 0") }
      config.seed = UInt64(seed)
    },
    "select_by": { value, config in
      guard let metric = Metric(try text(value)) else { throw Mismatch(expected: Metric.spellings) }
      config.selectionMetric = metric
    },
    "early_stopping": { value, config in config.earlyStoppingPatience = try integer(value) },
    "initialize_from": { value, config in
      config.initialization = .init(path: try text(value), newClassifier: config.initialization?.newClassifier ?? false)
    },
    "new_classifier": { value, config in
      guard config.initialization != nil else { throw Mismatch(expected: "beside initialize_from (the weights whose classifier it replaces)") }
      config.initialization?.newClassifier = try flag(value)
    },
    "freeze": { value, config in
      guard case .text(let spelling) = value.kind, let epochs = TrainingConfiguration.frozenBodyEpochs(spelling) else {
        throw Mismatch(expected: "body:EPOCHS")
      }
      config.freezeBodyEpochs = epochs
    },
    "layer_decay": { value, config in config.layerDecay = Float(try number(value)) },
  ]

  /// Settings that others refine (`warmup` the schedule, `effective_number_beta` the class
  /// weights, `new_classifier` the checkpoint to start from): applied first, so that a refinement holds wherever it stands in the file or
  /// a grid puts its values.
  static let appliedFirst: Set = ["schedule", "class_weights", "initialize_from"]

  /// `settings` in the order they apply: `appliedFirst` ones, then the rest as given.
  static func ordered<Value>(_ settings: [(key: String, value: Value)]) -> [(key: String, value: Value)] {
    settings.filter { appliedFirst.contains($0.key) } + settings.filter { !appliedFirst.contains($0.key) }
  }
}

extension Experiment {
  /// The keys of an experiment's `training:` section (`quorum train`'s flags with
  /// underscores), sorted.
  public static var trainingSettingNames: [String] { TrainingSettings.all.keys.sorted() }
}
