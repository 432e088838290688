import Files
import Foundation
import Tensor
import Data
import NN

/// Everything that decides a training run's result. Two runs with equal configurations,
/// data and thread counts give bit-identical weights on the CPU backend.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
  public enum OptimizerKind: String, Codable, CaseIterable, Sendable { case sgd, adamw }

  public var model: MobileNetV2Configuration
  public var epochs: Int = 15
  public var batchSize: Int = 128
  /// How an epoch is cut into batches of at most `batchSize`.
  public var batching: Batching = .even
  public var optimizer: OptimizerKind = .sgd
  /// The peak learning rate.
  public var learningRate: Double = 0.1
  public var momentum: Float = 0.9
  public var nesterov: Bool = true
  public var weightDecay: Float = 5e-4
  public var schedule: LearningRateSchedule = .oneCycle(warmupFraction: 0.15)
  /// One-cycle's momentum cycling (PyTorch's OneCycleLR default, `cycle_momentum`): SGD's
  /// momentum falls from the cycle's maximum to its base as the rate rises, and back as
  /// it falls, in place of `momentum`. nil: `momentum` throughout, as the reference
  /// recipe (and its PyTorch peer) trains.
  public var momentumCycle: MomentumCycle? = nil
  public var labelSmoothing: Float = 0.1
  /// Per-class loss weights, computed from the training set's class counts.
  public var classWeighting: ClassWeighting = .none
  /// Deferred re-weighting (Cao et al. 2019): the class weights apply from this epoch
  /// (1-based) on, plain weights before it. nil: from the start.
  public var reweightFromEpoch: Int? = nil
  /// How each epoch's examples are drawn.
  public var sampling: Sampling = .shuffle
  /// Repeat (with fresh augmentation) every class with fewer examples up to this count.
  public var growClassesTo: Int? = nil
  /// τ of logit adjustment: the loss sees logits + τ·log(class prior). 1 is balanced
  /// softmax; 0 is off.
  public var logitAdjustment: Double = 0
  /// Focal loss γ; 0 is cross-entropy.
  public var focalGamma: Float = 0
  /// Clip the global gradient norm to this (nil: no clipping).
  public var gradientClipNorm: Float? = nil
  /// Keep an exponential moving average of the weights with this decay and evaluate with it.
  public var emaDecay: Float? = nil
  public var augmentation: Augmentation = Augmentation(shift: 2, horizontalFlip: 0.5)
  /// What the inputs are normalised by: the training images' statistics, or ImageNet's
  /// (for torchvision's pretrained weights).
  public var normalization: InputNormalization = .dataset
  /// Mixup / CutMix of training batches (soft targets through the loss).
  public var mixing: Mixing = .none
  /// Test-time augmentation of the final validation and test predictions.
  public var testTimeAugmentation: TestTimeAugmentation = .none
  public var seed: UInt64 = 0
  /// Which validation metric selects the best epoch.
  public var selectionMetric: Metric = .accuracy
  /// Stop after this many epochs without improvement (nil: never stop early).
  public var earlyStoppingPatience: Int? = nil
  /// Restore the best epoch's weights at the end (when there is a validation set).
  public var restoreBest: Bool = true
  /// Score a labelled test set every this many epochs (nil: every epoch; 0: only at the
  /// end, where its logits are made anyway). The validation set is scored every epoch: it
  /// selects the epoch.
  public var testEvaluationInterval: Int? = nil
  /// The weights training starts from (fine-tuning) instead of random ones; nil: random.
  public var initialization: Initialization? = nil
  /// Train only the classifier for this many first epochs: the features frozen, their batch
  /// norms in evaluation mode, no optimizer state for them until they train. nil: none;
  /// `epochs`: never unfrozen (a linear probe).
  public var freezeBodyEpochs: Int? = nil
  /// Layer-wise learning-rate decay: the classifier trains at the scheduled rate, each
  /// layer below it (`MobileNetV2.layers`) at this factor of the one above. nil: one rate.
  public var layerDecay: Float? = nil

  /// A checkpoint to start from (`WeightTransfer`): Quorum's own of any class count or
  /// input channels, or torchvision's `mobilenet_v2` state dict.
  public struct Initialization: Codable, Equatable, Sendable {
    public var path: String
    /// Start the classifier afresh even where the file's has as many classes (other labels).
    public var newClassifier: Bool

    public init(path: String, newClassifier: Bool = false) {
      self.path = path
      self.newClassifier = newClassifier
    }

    enum CodingKeys: String, CodingKey { case path, newClassifier = "new_classifier" }
  }

  /// The epochs of a freeze spelled `body:EPOCHS` (`--freeze`, the experiment's `freeze`),
  /// nil for another spelling.
  public static func frozenBodyEpochs(_ spelling: String) -> Int? {
    guard spelling.hasPrefix("body:"), let epochs = Int(spelling.dropFirst(5)), epochs >= 1 else { return nil }
    return epochs
  }

  /// Whether the features are frozen in (0-based) `epoch`.
  public func freezesBody(inEpoch epoch: Int) -> Bool { freezeBodyEpochs.map { epoch < $0 } ?? false }

  /// Each parameter's multiple of the scheduled learning rate, for parameters of these
  /// `layers` (`MobileNetV2.layers`): layer-wise decay, nil without it.
  public func learningRateScales(layers: [Int]) -> [Float]? {
    guard let layerDecay, let top = layers.max() else { return nil }
    return layers.map { Float(pow(Double(layerDecay), Double(top - $0))) }
  }

  public static let maximumEpochs = 100_000
  public static let maximumBatchSize = 65_536
  public static let maximumGrowClassesTo = 10_000_000

  public init(model: MobileNetV2Configuration) {
    self.model = model
  }

  /// Checks the values a user can get wrong, naming the setting.
  public func validate() throws {
    func fail(_ message: String) -> TrainingError { .invalidConfiguration(message) }
    try model.validate()
    // Upper bounds keep a typo (an extra digit or three) from becoming an allocation that
    // kills the process or a run that never ends; each is far past any real setting.
    guard (1...Self.maximumEpochs).contains(epochs) else { throw fail("epochs must be in 1…\(Self.maximumEpochs), got \(epochs)") }
    guard (2...Self.maximumBatchSize).contains(batchSize) else {
      throw fail("batch size must be in 2…\(Self.maximumBatchSize) (batch normalisation needs two examples), got \(batchSize)")
    }
    guard learningRate.isFinite, learningRate > 0 else { throw fail("learning rate must be a positive number, got \(learningRate)") }
    guard momentum.isFinite, (0..<1).contains(momentum) else { throw fail("momentum must be in [0, 1), got \(momentum)") }
    if let momentumCycle {
      guard case .oneCycle = schedule else { throw fail("momentum cycling (--cycle-momentum) needs the one-cycle schedule") }
      guard optimizer == .sgd else { throw fail("momentum cycling (--cycle-momentum) is SGD's: AdamW has no momentum to cycle") }
      guard momentumCycle.base.isFinite, momentumCycle.maximum.isFinite, 0 <= momentumCycle.base,
        momentumCycle.base <= momentumCycle.maximum, momentumCycle.maximum < 1
      else {
        throw fail("the momentum cycle must have 0 ≤ base ≤ maximum < 1, got \(momentumCycle.base)…\(momentumCycle.maximum)")
      }
    }
    guard weightDecay.isFinite, weightDecay >= 0 else { throw fail("weight decay must be a number ≥ 0, got \(weightDecay)") }
    guard (0..<1).contains(labelSmoothing) else { throw fail("label smoothing must be in [0, 1), got \(labelSmoothing)") }
    if case .explicit(let weights) = classWeighting {
      guard weights.count == model.classes else { throw fail("class weights has \(weights.count) values for \(model.classes) classes") }
      guard weights.allSatisfy({ $0.isFinite && $0 >= 0 }), weights.contains(where: { $0 > 0 }) else {
        throw fail("class weights must be numbers ≥ 0, not all 0, got \(weights)")
      }
    }
    if case .effectiveNumber(let beta) = classWeighting, !(0..<1).contains(beta) {
      throw fail("the effective-number β must be in [0, 1), got \(beta)")
    }
    if let reweightFromEpoch {
      guard classWeighting != .none else { throw fail("deferred re-weighting needs class weights (--class-weights)") }
      guard (1...epochs).contains(reweightFromEpoch) else { throw fail("re-weighting epoch \(reweightFromEpoch) is outside 1…\(epochs)") }
    }
    if let growClassesTo, !(1...Self.maximumGrowClassesTo).contains(growClassesTo) {
      throw fail("classes can grow to 1…\(Self.maximumGrowClassesTo) examples, got \(growClassesTo)")
    }
    guard logitAdjustment.isFinite, logitAdjustment >= 0 else { throw fail("logit adjustment τ must be a number ≥ 0, got \(logitAdjustment)") }
    guard focalGamma.isFinite, focalGamma >= 0 else { throw fail("focal γ must be a number ≥ 0, got \(focalGamma)") }
    if let emaDecay, !(0..<1).contains(emaDecay) { throw fail("EMA decay must be in [0, 1), got \(emaDecay)") }
    if let gradientClipNorm, !(gradientClipNorm.isFinite && gradientClipNorm > 0) {
      throw fail("gradient clip norm must be a positive number, got \(gradientClipNorm)")
    }
    if let testEvaluationInterval, testEvaluationInterval < 0 {
      throw fail("the test evaluation interval must be 0 (only at the end) or more epochs, got \(testEvaluationInterval)")
    }
    if let earlyStoppingPatience, earlyStoppingPatience < 1 {
      throw fail("early stopping patience must be at least 1 epoch, got \(earlyStoppingPatience)")
    }
    if let freezeBodyEpochs, !(1...epochs).contains(freezeBodyEpochs) {
      throw fail("the body can be frozen for 1…\(epochs) epochs (the run's), got \(freezeBodyEpochs)")
    }
    if let layerDecay, !(layerDecay.isFinite && layerDecay > 0 && layerDecay <= 1) {
      throw fail("layer decay must be in (0, 1] (each layer's rate that factor of the one above), got \(layerDecay)")
    }
    if let initialization, initialization.path.isEmpty { throw fail("the checkpoint to initialise from has an empty path") }
    do { try mixing.validate() } catch let error as DataError { throw fail(error.problem) }
    guard (0...Augmentation.maximumShift).contains(testTimeAugmentation.shift) else {
      throw fail("test-time shift must be in 0…\(Augmentation.maximumShift) pixels, got \(testTimeAugmentation.shift)")
    }
    do { try augmentation.validate() } catch let error as DataError { throw fail(error.problem) }
  }
}

public enum TrainingError: Error, CustomStringConvertible {
  case invalidConfiguration(String)
  /// The loss stopped being a number: the settings train, but not stably.
  case diverged(String)
  case resumeMismatch(file: String, String)
  /// The backend failed (`Backend.check`) while the trainer was doing `while`.
  case device(DeviceFailure, while: String, batchSize: Int)

  public var description: String {
    switch self {
    case .invalidConfiguration(let message): return "invalid training configuration: \(message)"
    case .diverged(let message): return "training diverged: \(message)"
    case .resumeMismatch(let file, let message): return "\(file): cannot resume: \(message)"
    case .device(let failure, let doing, let batchSize):
      guard failure.isOutOfMemory else { return "\(failure), while \(doing)" }
      return "\(failure), while \(doing) at batch size \(batchSize): lower the batch size, or train fewer members on this device"
    }
  }
}
