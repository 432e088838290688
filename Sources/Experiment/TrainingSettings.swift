import Data
import NN
import Training

/// One training setting: an experiment's `training:` key and `quorum train`'s flag (the
/// key with dashes, `--learning-rate` for `learning_rate`), with its help, its default as
/// the flag spells it, how a flag's text reads as a value, and how a value applies to a
/// configuration. Both front ends apply settings through this one table, so a key and its
/// flag cannot mean two things.
public struct TrainingSetting: Sendable {
  /// How the text of a flag reads as a value (an experiment file's YAML says it itself).
  public enum Form: Sendable {
    /// A number, or text that `apply` refuses as one.
    case number
    /// true or false.
    case flag
    /// Text as written.
    case text
    /// Comma-separated values.
    case list
    /// A list where the text has a comma or is a number, else text (`class_weights`).
    case textOrList
  }

  public let key: String
  public let form: Form
  public let summary: String
  /// The default as the flag spells it; nil where unset is the default.
  public let defaultValue: String?
  /// The value's name in `--help` (`<value>` otherwise).
  public let valueName: String?
  let apply: @Sendable (SettingValue, inout TrainingConfiguration) throws -> Void

  public var flag: String { "--" + key.replacingOccurrences(of: "_", with: "-") }
  /// `--help`'s text: the summary and the default.
  public var help: String {
    guard let defaultValue else { return summary }
    return "\(summary) (default: \(form == .flag ? (defaultValue == "true" ? "on" : "off") : defaultValue))"
  }

  /// The value a flag's text stands for.
  public func value(ofFlag text: String) -> SettingValue {
    func scalar(_ part: Substring) -> SettingValue {
      let trimmed = part.trimmingCharacters(in: .whitespaces)
      return SettingValue(kind: Double(trimmed).map { .number($0) } ?? .text(trimmed), line: nil)
    }
    switch form {
    case .number: return scalar(Substring(text))
    case .flag: return SettingValue(kind: ["true": .flag(true), "false": .flag(false)][text] ?? .text(text), line: nil)
    case .text: return SettingValue(kind: .text(text), line: nil)
    case .list: return SettingValue(kind: .list(text.split(separator: ",").map(scalar)), line: nil)
    case .textOrList:
      return text.contains(",") || Double(text) != nil
        ? SettingValue(kind: .list(text.split(separator: ",").map(scalar)), line: nil) : SettingValue(kind: .text(text), line: nil)
    }
  }
}

/// A value that does not fit its setting: what it must be instead.
public struct TrainingSettingMismatch: Error, CustomStringConvertible {
  public let key: String
  public let value: SettingValue
  public let expected: String
  public var description: String { "\(key) must be \(expected), got \(value)" }
}

/// The training settings, in `--help`'s order, and how a list of them applies.
public enum TrainingSettings {
  public static let table: [TrainingSetting] = model + optimisation + imbalance + augmentation + evaluation + fineTuning
  /// The settings by key.
  public static let all: [String: TrainingSetting] = Dictionary(uniqueKeysWithValues: table.map { ($0.key, $0) })
  /// The keys, sorted.
  public static var keys: [String] { all.keys.sorted() }

  /// The setting `key` (a name the table lacks is a programming error).
  public static func named(_ key: String) -> TrainingSetting {
    guard let setting = all[key] else { preconditionFailure("no training setting \(key)") }
    return setting
  }

  /// Settings that others refine (`warmup` the schedule, `effective_number_beta` the class
  /// weights, `new_classifier` the checkpoint to start from, `stem_stride` the preset):
  /// applied first, so that a refinement holds wherever it stands in a file, on a command
  /// line, or where a grid puts its values.
  static let appliedFirst: Set = ["schedule", "class_weights", "initialize_from", "preset"]

  /// `settings` in the order they apply: `appliedFirst` ones, then the rest as given.
  static func ordered<Value>(_ settings: [(key: String, value: Value)]) -> [(key: String, value: Value)] {
    settings.filter { appliedFirst.contains($0.key) } + settings.filter { !appliedFirst.contains($0.key) }
  }

  /// `configuration` with `settings` applied in their order; the first that does not fit
  /// its setting is thrown, naming both.
  public static func apply(_ settings: [(key: String, value: SettingValue)], to configuration: inout TrainingConfiguration) throws {
    for (key, value) in ordered(settings) {
      do { try named(key).apply(value, &configuration) } catch let mismatch as Mismatch {
        throw TrainingSettingMismatch(key: key, value: value, expected: mismatch.expected)
      }
    }
  }

  struct Mismatch: Error { let expected: String }

  // MARK: Reading values

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
  static func choice<T: RawRepresentable & CaseIterable>(_ value: SettingValue, _ type: T.Type) throws -> T where T.RawValue == String {
    guard let choice = T(rawValue: try text(value)) else { throw Mismatch(expected: "one of " + choices(T.self)) }
    return choice
  }
  static func choices<T: RawRepresentable & CaseIterable>(_ type: T.Type) -> String where T.RawValue == String {
    T.allCases.map(\.rawValue).joined(separator: ", ")
  }

  static func setting(
    _ key: String, _ form: TrainingSetting.Form, _ summary: String, default defaultValue: String? = nil, valueName: String? = nil,
    _ apply: @escaping @Sendable (SettingValue, inout TrainingConfiguration) throws -> Void
  ) -> TrainingSetting {
    TrainingSetting(key: key, form: form, summary: summary, defaultValue: defaultValue, valueName: valueName, apply: apply)
  }

  // MARK: The table

  static let schedules = ["one-cycle", "warmup-cosine", "step", "plateau", "constant"]

  static let model: [TrainingSetting] = [
    setting("preset", .text, "Stride preset: imagenet (stem 2, stages 1,2,2,2,1,2,1) or cifar (stem 1, stages 1,1,2,2,1,2,1).", default: "imagenet") {
      value, config in
      let preset = try choice(value, MobileNetV2Configuration.Preset.self)
      config.model.stemStride = preset.stemStride
      config.model.stageStrides = preset.stageStrides
    },
    setting("width", .number, "Width multiplier (channels × width, rounded to multiples of 8).", default: "1") { value, config in
      config.model.width = try number(value)
    },
    setting("stem_stride", .number, "Override the preset's stem stride (1 or 2).") { value, config in
      config.model.stemStride = try integer(value)
    },
    setting("stage_strides", .list, "Override the preset's seven stage strides.", valueName: "s1,…,s7") { value, config in
      guard case .list(let values) = value.kind else { throw Mismatch(expected: "a list of 7 strides") }
      config.model.stageStrides = try values.map(integer)
    },
    setting("dropout", .number, "Dropout probability before the classifier.", default: "0.2") { value, config in
      config.model.dropout = Float(try number(value))
    },
    setting("stochastic_depth", .number, "Stochastic depth: drop probability of the last residual block (earlier blocks scale linearly).",
      default: "0") { value, config in config.model.stochasticDepth = Float(try number(value)) },
  ]

  static let optimisation: [TrainingSetting] = [
    setting("epochs", .number, "Number of epochs.", default: "15") { value, config in config.epochs = try integer(value) },
    setting("batch_size", .number, "Mini-batch size.", default: "128") { value, config in config.batchSize = try integer(value) },
    setting("batching", .text, """
      How an epoch is cut into batches: even (as few batches as hold it, sizes differing by one at most) or ragged (full \
      batches and the rest last, as PyTorch's DataLoader with drop_last=False).
      """, default: "even") { value, config in config.batching = try choice(value, Batching.self) },
    setting("optimizer", .text, "sgd (momentum, PyTorch's L2 weight decay) or adamw (decoupled weight decay).", default: "sgd") {
      value, config in config.optimizer = try choice(value, TrainingConfiguration.OptimizerKind.self)
    },
    setting("learning_rate", .number, "Peak learning rate.", default: "0.1") { value, config in config.learningRate = try number(value) },
    setting("momentum", .number, "SGD momentum.", default: "0.9") { value, config in config.momentum = Float(try number(value)) },
    setting("nesterov", .flag, "Nesterov momentum for SGD.", default: "true") { value, config in config.nesterov = try flag(value) },
    setting("cycle_momentum", .flag, """
      one-cycle: cycle SGD's momentum as PyTorch's OneCycleLR does by default, 0.95 → 0.85 at the peak → 0.95 (in place of \
      --momentum).
      """, default: "false") { value, config in config.momentumCycle = try flag(value) ? MomentumCycle() : nil },
    setting("weight_decay", .number, "Weight decay (never on batch-norm parameters or biases).", default: "0.0005") { value, config in
      config.weightDecay = Float(try number(value))
    },
    setting("schedule", .text, "Learning-rate schedule: \(schedules.joined(separator: ", ")).", default: "one-cycle") { value, config in
      switch try text(value) {
      case "one-cycle": config.schedule = .oneCycle(warmupFraction: 0.15)
      case "warmup-cosine": config.schedule = .warmupCosine(warmupFraction: 0.15)
      case "constant": config.schedule = .constant
      case "step": config.schedule = .step(epochs: 5, factor: 0.1)
      case "plateau": config.schedule = .reduceOnPlateau(factor: 0.1, patience: 2)
      default: throw Mismatch(expected: "one of " + schedules.joined(separator: ", "))
      }
    },
    // The schedule's parameters refine it, wherever they stand (`appliedFirst`).
    setting("warmup", .number, "one-cycle and warmup-cosine: the warm-up's share of all steps.", default: "0.15") { value, config in
      let fraction = try number(value)
      switch config.schedule {
      case .oneCycle: config.schedule = .oneCycle(warmupFraction: fraction)
      case .warmupCosine: config.schedule = .warmupCosine(warmupFraction: fraction)
      default: throw Mismatch(expected: "set with schedule one-cycle or warmup-cosine (the schedules that warm up)")
      }
    },
    setting("step_epochs", .number, "step: multiply the rate by the decay factor every this many epochs.", default: "5") { value, config in
      guard case .step(_, let factor) = config.schedule else { throw Mismatch(expected: "set with schedule step") }
      config.schedule = .step(epochs: try integer(value), factor: factor)
    },
    setting("decay_factor", .number, "step and plateau: the factor that lowers the rate.", default: "0.1") { value, config in
      switch config.schedule {
      case .step(let epochs, _): config.schedule = .step(epochs: epochs, factor: try number(value))
      case .reduceOnPlateau(_, let patience): config.schedule = .reduceOnPlateau(factor: try number(value), patience: patience)
      default: throw Mismatch(expected: "set with schedule step or plateau")
      }
    },
    setting("plateau_patience", .number, "plateau: epochs without improvement before the rate is lowered.", default: "2") { value, config in
      guard case .reduceOnPlateau(let factor, _) = config.schedule else { throw Mismatch(expected: "set with schedule plateau") }
      config.schedule = .reduceOnPlateau(factor: factor, patience: try integer(value))
    },
    setting("label_smoothing", .number, "Label smoothing ε.", default: "0.1") { value, config in config.labelSmoothing = Float(try number(value)) },
    setting("clip_norm", .number, "Clip the global gradient norm to this value.") { value, config in
      config.gradientClipNorm = Float(try number(value))
    },
    setting("ema_decay", .number, "Keep an exponential moving average of the weights with this decay (e.g. 0.999) and evaluate with it.") {
      value, config in config.emaDecay = Float(try number(value))
    },
    setting("seed", .number, "Seed of initialisation, shuffling, augmentation, dropout and the validation split.", default: "0") {
      value, config in
      let seed = try integer(value)
      guard seed >= 0 else { throw Mismatch(expected: "a whole number ≥ 0") }
      config.seed = UInt64(seed)
    },
  ]

  static let imbalance: [TrainingSetting] = [
    setting("class_weights", .textOrList, """
      Per-class loss weights: none, inverse-frequency, effective-number (Cui et al., β from effective_number_beta), or a \
      comma-separated list.
      """, default: "none", valueName: "weights") { value, config in
      if case .list(let values) = value.kind { config.classWeighting = .explicit(try values.map { Float(try number($0)) }); return }
      switch try text(value) {
      case "none": config.classWeighting = .none
      case "inverse-frequency": config.classWeighting = .inverseFrequency
      case "effective-number": config.classWeighting = .effectiveNumber(beta: 0.9999)
      default: throw Mismatch(expected: "none, inverse-frequency, effective-number or a list")
      }
    },
    setting("effective_number_beta", .number, "effective-number class weights: β.", default: "0.9999") { value, config in
      guard case .effectiveNumber = config.classWeighting else { throw Mismatch(expected: "set with class_weights effective-number") }
      config.classWeighting = .effectiveNumber(beta: try number(value))
    },
    setting("reweight_from_epoch", .number, "Deferred re-weighting: apply the class weights from this epoch on (DRW; e.g. 0.8 × epochs).") {
      value, config in config.reweightFromEpoch = try integer(value)
    },
    setting("sampling", .text, "How epochs draw examples: shuffle, class-balanced (classes equally likely) or square-root (∝ √n_c).",
      default: "shuffle") { value, config in config.sampling = try choice(value, Sampling.self) },
    setting("grow_classes_to", .number, "Repeat every class with fewer examples up to this count per epoch, each copy augmented afresh.") {
      value, config in config.growClassesTo = try integer(value)
    },
    setting("logit_adjustment", .number, "Logit adjustment τ: train on logits + τ·log(class prior); 1 is balanced softmax, 0 off.",
      default: "0") { value, config in config.logitAdjustment = try number(value) },
    setting("focal_gamma", .number, "Focal loss γ (0: cross-entropy).", default: "0") { value, config in config.focalGamma = Float(try number(value)) },
  ]

  static let augmentation: [TrainingSetting] = [
    setting("shift", .number, "Random shift in pixels (zero padding) for augmentation; 0 disables.", default: "2") { value, config in
      config.augmentation.shift = try integer(value)
    },
    setting("flip", .number, "Probability of a horizontal flip for augmentation.", default: "0.5") { value, config in
      config.augmentation.horizontalFlip = try number(value)
    },
    setting("vertical_flip", .number, "Probability of a vertical flip.", default: "0") { value, config in
      config.augmentation.verticalFlip = try number(value)
    },
    setting("rotation", .number, "Random rotation up to ± this many degrees (bilinear, zero outside).", default: "0") { value, config in
      config.augmentation.rotation = try number(value)
    },
    setting("scale", .number, "Random scaling by up to ± this fraction (e.g. 0.1).", default: "0") { value, config in
      config.augmentation.scale = try number(value)
    },
    setting("shear", .number, "Random shear up to ± this many degrees.", default: "0") { value, config in
      config.augmentation.shear = try number(value)
    },
    setting("erasing", .number, "Probability of random erasing (one rectangle of 2–33 % of the image).", default: "0") { value, config in
      config.augmentation.erasing = try number(value)
    },
    setting("elastic_alpha", .number, "Elastic distortion α: displacement scale in pixels (e.g. 8 for 28×28; 0 off).", default: "0") {
      value, config in config.augmentation.elasticAlpha = try number(value)
    },
    setting("elastic_sigma", .number, "Elastic distortion σ: smoothness of the displacement field in pixels.", default: "4") { value, config in
      config.augmentation.elasticSigma = try number(value)
    },
    setting("resized_crop", .number, """
      Random resized crop: the smallest share of the image's area a crop keeps (e.g. 0.08 as ImageNet's recipes, 0.35 for small \
      images; aspect 3/4…4/3; 0 off).
      """, default: "0") { value, config in config.augmentation.resizedCrop = try number(value) },
    setting("brightness", .number, "Colour jitter: brightness factor uniform in 1 ± this (e.g. 0.4; 0 off).", default: "0") { value, config in
      config.augmentation.brightness = try number(value)
    },
    setting("contrast", .number, "Colour jitter: contrast factor uniform in 1 ± this.", default: "0") { value, config in
      config.augmentation.contrast = try number(value)
    },
    setting("saturation", .number, "Colour jitter: saturation factor uniform in 1 ± this (colour images).", default: "0") { value, config in
      config.augmentation.saturation = try number(value)
    },
    setting("mixup", .number, "Mixup α (e.g. 0.2; 0 off): blend each batch with itself reversed, labels as soft targets.", default: "0") {
      value, config in config.mixing.mixup = try number(value)
    },
    setting("cutmix", .number, "CutMix α (e.g. 1; 0 off): paste a box of the reversed batch; with mixup too, each batch picks one.",
      default: "0") { value, config in config.mixing.cutmix = try number(value) },
    setting("mix_probability", .number, "Probability that a batch is mixed.", default: "1") { value, config in
      config.mixing.probability = try number(value)
    },
  ]

  static let evaluation: [TrainingSetting] = [
    setting("tta_flips", .flag, "Test-time augmentation: average the final predictions over left-right flips.", default: "false") {
      value, config in config.testTimeAugmentation.flips = try flag(value)
    },
    setting("tta_shift", .number, "Test-time augmentation: also average over shifts by this many pixels in the four directions.",
      default: "0") { value, config in config.testTimeAugmentation.shift = try integer(value) },
    setting("select_by", .text, """
      Validation metric that picks the best epoch and drives early stopping and reduce-on-plateau: \(Metric.spellings).
      """, default: "accuracy") { value, config in
      guard let metric = Metric(try text(value)) else { throw Mismatch(expected: Metric.spellings) }
      config.selectionMetric = metric
    },
    setting("early_stopping", .number, "Stop after this many epochs without validation improvement.") { value, config in
      config.earlyStoppingPatience = try integer(value)
    },
  ]

  static let fineTuning: [TrainingSetting] = [
    setting("initialize_from", .text, """
      Start from the weights of this checkpoint (Quorum's, of any class count or input channels, or torchvision's mobilenet_v2 \
      state dict as safetensors): the classifier is new where the classes differ, the stem adapted where the channels do.
      """, valueName: "file") { value, config in
      config.initialization = .init(path: try text(value), newClassifier: config.initialization?.newClassifier ?? false)
    },
    setting("new_classifier", .flag, "With initialize_from: start the classifier afresh even where the file's has as many classes (other labels).",
      default: "false") { value, config in
      guard config.initialization != nil else { throw Mismatch(expected: "beside initialize_from (the weights whose classifier it replaces)") }
      config.initialization?.newClassifier = try flag(value)
    },
    setting("freeze", .text, """
      Train only the classifier for the first EPOCHS epochs (the features frozen, their batch norms in evaluation mode), then \
      everything; EPOCHS = the run's epochs never unfreezes (a linear probe).
      """, valueName: "body:EPOCHS") { value, config in
      guard case .text(let spelling) = value.kind, let epochs = TrainingConfiguration.frozenBodyEpochs(spelling) else {
        throw Mismatch(expected: "body:EPOCHS")
      }
      config.freezeBodyEpochs = epochs
    },
    setting("normalization", .text, """
      Normalise the inputs by the training images' channel statistics (dataset) or ImageNet's (imagenet: for torchvision's \
      pretrained weights).
      """, default: "dataset") { value, config in config.normalization = try choice(value, InputNormalization.self) },
    setting("layer_decay", .number, """
      Layer-wise learning-rate decay: each layer below the classifier trains at this factor of the rate of the one above \
      (e.g. 0.7).
      """) { value, config in config.layerDecay = Float(try number(value)) },
  ]
}
