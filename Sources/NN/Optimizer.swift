import Foundation
import Tensor

/// Updates parameters from their gradients, on the backend that holds them. State tensors
/// are the backend's, named so that a checkpoint can store and restore them exactly.
///
/// An update is two halves, so that a training step can be recorded once and replayed
/// (`Backend.record`): `prepare` advances the optimizer's counters and writes the step's
/// scalars (the learning rate, bias corrections) to the backend, before the step; `update`
/// calls the operations, which read those scalars when they run.
///
/// An optimizer is made for a model's parameters, each with its learning-rate scale
/// (layer-wise decay; 1 by default). Only the parameters trained so far have state: a body
/// frozen for the first epochs has no momentum allocated until it is trained
/// (`allocateState`), as PyTorch's optimizers fill their state lazily.
public protocol Optimizer: AnyObject {
  /// This step's learning rate and counters, written to the backend (an upload: outside a
  /// recording). `momentum`: this step's SGD momentum where the schedule cycles it
  /// (one-cycle training), nil for the optimizer's own; AdamW has none to cycle.
  func prepare(learningRate: Float, momentum: Float?)
  /// The update of `parameters` (of those the optimizer was made for, each with state) at
  /// the prepared values (recordable).
  func update(_ parameters: [Parameter])
  /// Zeroed state for those of `parameters` that have none yet, so that `update` may take
  /// them: an allocation, outside a recording.
  func allocateState(for parameters: [Parameter])
  /// Every allocated state tensor by a stable name ("momentum/features.0.0.weight").
  var state: [(name: String, tensor: Tensor)] { get }
  /// Scalars of the state (e.g. Adam's step count), for checkpoints.
  var counters: [String: Int] { get set }
}

extension Optimizer {
  /// This step's learning rate, at the optimizer's own momentum.
  public func prepare(learningRate: Float) { prepare(learningRate: learningRate, momentum: nil) }

  /// One update with this learning rate.
  public func step(_ parameters: [Parameter], learningRate: Float) {
    prepare(learningRate: learningRate)
    update(parameters)
  }
}

/// The bookkeeping both optimizers share: which parameter is which, its learning-rate
/// group (parameters of one scale share the step's scalars), and its state tensors,
/// allocated when the parameter is first trained.
struct OptimizerSlots {
  let parameters: [Parameter]
  /// The distinct learning-rate scales, in order of first appearance.
  let scales: [Float]
  /// Each parameter's index in `scales`.
  let groups: [Int]
  /// Each parameter's state tensors (`perParameter` of them), nil until allocated.
  private(set) var tensors: [[Tensor]?]
  private let index: [ObjectIdentifier: Int]
  private let perParameter: Int

  init(parameters: [Parameter], learningRateScales: [Float]?, perParameter: Int) {
    let scales = learningRateScales ?? [Float](repeating: 1, count: parameters.count)
    precondition(scales.count == parameters.count, "one learning-rate scale per parameter")
    precondition(scales.allSatisfy { $0.isFinite && $0 > 0 }, "learning-rate scales must be positive")
    var distinct: [Float] = []
    groups = scales.map { scale in
      if let group = distinct.firstIndex(of: scale) { return group }
      distinct.append(scale)
      return distinct.count - 1
    }
    self.scales = distinct
    self.parameters = parameters
    self.perParameter = perParameter
    tensors = [[Tensor]?](repeating: nil, count: parameters.count)
    index = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { (ObjectIdentifier($1), $0) })
  }

  mutating func allocate(for chosen: [Parameter], backend: Backend) {
    for parameter in chosen {
      let slot = self.slot(of: parameter)
      if tensors[slot] == nil { tensors[slot] = (0..<perParameter).map { _ in backend.makeTensor(shape: [parameter.count]) } }
    }
  }

  func slot(of parameter: Parameter) -> Int {
    guard let slot = index[ObjectIdentifier(parameter)] else { preconditionFailure("\(parameter.name) is not one of the optimizer's parameters") }
    return slot
  }

  /// The state of `parameter` (which `update` may only take once allocated).
  func state(of parameter: Parameter) -> (group: Int, tensors: [Tensor]) {
    let slot = slot(of: parameter)
    guard let state = tensors[slot] else { preconditionFailure("\(parameter.name) is updated before its state is allocated") }
    return (groups[slot], state)
  }

  /// The allocated state, named `prefixes[i] + parameter name` for its i-th tensor.
  func named(_ prefixes: [String]) -> [(name: String, tensor: Tensor)] {
    prefixes.enumerated().flatMap { (i, prefix) in
      zip(parameters, tensors).compactMap { parameter, state in state.map { (prefix + parameter.name, $0[i]) } }
    }
  }
}

/// Stochastic gradient descent with momentum, as PyTorch's `torch.optim.SGD`
/// (dampening 0): v ← μ·v + g; the step is g + μ·v with Nesterov, v without.
/// Weight decay is L2 added to the gradient (PyTorch's semantics, which the reference
/// recipe's 5e-4 is tuned for), and only on parameters that decay.
public final class SGD: Optimizer {
  public let momentum: Float
  public let nesterov: Bool
  public let weightDecay: Float
  private var slots: OptimizerSlots
  private let backend: Backend
  /// The momentum, then each learning-rate group's rate, on the backend.
  private let scalars: StepScalars
  private static let momentumScalar = 0

  /// `learningRateScales`: each parameter's multiple of the step's rate (nil: 1).
  /// `trainedFirst`: the parameters with state from the start (nil: all).
  public init(
    parameters: [Parameter], momentum: Float = 0.9, nesterov: Bool = true, weightDecay: Float = 0,
    learningRateScales: [Float]? = nil, trainedFirst: [Parameter]? = nil, backend: Backend
  ) {
    self.momentum = momentum
    self.nesterov = nesterov
    self.weightDecay = weightDecay
    self.backend = backend
    slots = OptimizerSlots(parameters: parameters, learningRateScales: learningRateScales, perParameter: 1)
    scalars = StepScalars(count: 1 + slots.scales.count, backend: backend)
    allocateState(for: trainedFirst ?? parameters)
  }

  public var state: [(name: String, tensor: Tensor)] { slots.named(["momentum/"]) }
  public var counters: [String: Int] = [:]

  public func allocateState(for parameters: [Parameter]) { slots.allocate(for: parameters, backend: backend) }

  public func prepare(learningRate: Float, momentum stepMomentum: Float?) {
    scalars.set(Self.momentumScalar, to: stepMomentum ?? momentum)
    for (group, scale) in slots.scales.enumerated() { scalars.set(1 + group, to: learningRate * scale) }
    scalars.write()
  }

  public func update(_ parameters: [Parameter]) {
    for parameter in parameters {
      let (group, state) = slots.state(of: parameter)
      backend.sgdStep(
        weight: parameter.value, gradient: parameter.gradient, velocity: state[0], count: parameter.count,
        learningRate: scalars[1 + group], momentum: scalars[Self.momentumScalar], decay: parameter.decays ? weightDecay : 0,
        nesterov: nesterov)
    }
  }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter 2019), as `torch.optim.AdamW`:
/// w ← w − lr·λ·w, then the bias-corrected Adam step.
public final class AdamW: Optimizer {
  public let beta1: Float
  public let beta2: Float
  public let epsilon: Float
  public let weightDecay: Float
  private var slots: OptimizerSlots
  private var steps = 0
  private let backend: Backend
  /// The step's scalars on the backend: √(1 − β₂ᵗ), then each learning-rate group's step
  /// size and decay factor.
  private let scalars: StepScalars
  private static let rootCorrection2 = 0

  /// `learningRateScales`: each parameter's multiple of the step's rate (nil: 1).
  /// `trainedFirst`: the parameters with state from the start (nil: all).
  public init(
    parameters: [Parameter], beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01,
    learningRateScales: [Float]? = nil, trainedFirst: [Parameter]? = nil, backend: Backend
  ) {
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weightDecay = weightDecay
    self.backend = backend
    slots = OptimizerSlots(parameters: parameters, learningRateScales: learningRateScales, perParameter: 2)
    scalars = StepScalars(count: 1 + 2 * slots.scales.count, backend: backend)
    allocateState(for: trainedFirst ?? parameters)
  }

  public var state: [(name: String, tensor: Tensor)] { slots.named(["adam.m/", "adam.v/"]) }

  public var counters: [String: Int] {
    get { ["adam.steps": steps] }
    set { steps = newValue["adam.steps"] ?? 0 }
  }

  public func allocateState(for parameters: [Parameter]) { slots.allocate(for: parameters, backend: backend) }

  public func prepare(learningRate: Float, momentum: Float?) {
    steps += 1
    let correction1 = 1 - Float(pow(Double(beta1), Double(steps)))
    let correction2 = 1 - Float(pow(Double(beta2), Double(steps)))
    scalars.set(Self.rootCorrection2, to: correction2.squareRoot())
    for (group, scale) in slots.scales.enumerated() {
      scalars.set(1 + 2 * group, to: learningRate * scale / correction1)
      scalars.set(2 + 2 * group, to: 1 - learningRate * scale * weightDecay)
    }
    scalars.write()
  }

  public func update(_ parameters: [Parameter]) {
    for parameter in parameters {
      let (group, state) = slots.state(of: parameter)
      backend.adamWStep(
        weight: parameter.value, gradient: parameter.gradient, first: state[0], second: state[1],
        count: parameter.count, beta1: beta1, beta2: beta2, epsilon: epsilon,
        decayFactor: parameter.decays ? scalars[2 + 2 * group] : nil, stepSize: scalars[1 + 2 * group],
        rootCorrection2: scalars[Self.rootCorrection2])
    }
  }
}
