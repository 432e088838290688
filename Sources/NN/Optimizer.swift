import Foundation
import Tensor

/// Updates parameters from their gradients, on the backend that holds them. State tensors
/// are the backend's, named so that a checkpoint can store and restore them exactly.
///
/// An update is two halves, so that a training step can be recorded once and replayed
/// (`Backend.record`): `prepare` advances the optimizer's counters and writes the step's
/// scalars (the learning rate, bias corrections) to the backend, before the step; `update`
/// calls the operations, which read those scalars when they run.
public protocol Optimizer: AnyObject {
  /// This step's learning rate and counters, written to the backend (an upload: outside a
  /// recording). `momentum`: this step's SGD momentum where the schedule cycles it
  /// (one-cycle training), nil for the optimizer's own; AdamW has none to cycle.
  func prepare(learningRate: Float, momentum: Float?)
  /// The update of every parameter at the prepared values (recordable).
  func update(_ parameters: [Parameter])
  /// Every state tensor by a stable name ("momentum/features.0.0.weight").
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

/// Stochastic gradient descent with momentum, as PyTorch's `torch.optim.SGD`
/// (dampening 0): v ← μ·v + g; the step is g + μ·v with Nesterov, v without.
/// Weight decay is L2 added to the gradient (PyTorch's semantics, which the reference
/// recipe's 5e-4 is tuned for), and only on parameters that decay.
public final class SGD: Optimizer {
  public let momentum: Float
  public let nesterov: Bool
  public let weightDecay: Float
  private let velocities: [Tensor]
  private let names: [String]
  private let backend: Backend
  /// The learning rate and the momentum, on the backend.
  private let scalars: StepScalars
  private enum Scalar { static let learningRate = 0, momentum = 1 }

  public init(parameters: [Parameter], momentum: Float = 0.9, nesterov: Bool = true, weightDecay: Float = 0, backend: Backend) {
    self.momentum = momentum
    self.nesterov = nesterov
    self.weightDecay = weightDecay
    self.backend = backend
    velocities = parameters.map { backend.makeTensor(shape: [$0.count]) }
    names = parameters.map { "momentum/" + $0.name }
    scalars = StepScalars(count: 2, backend: backend)
  }

  public var state: [(name: String, tensor: Tensor)] { Array(zip(names, velocities)).map { ($0, $1) } }
  public var counters: [String: Int] = [:]

  public func prepare(learningRate: Float, momentum stepMomentum: Float?) {
    scalars.set(Scalar.learningRate, to: learningRate)
    scalars.set(Scalar.momentum, to: stepMomentum ?? momentum)
    scalars.write()
  }

  public func update(_ parameters: [Parameter]) {
    for (parameter, velocity) in zip(parameters, velocities) {
      backend.sgdStep(
        weight: parameter.value, gradient: parameter.gradient, velocity: velocity, count: parameter.count,
        learningRate: scalars[Scalar.learningRate], momentum: scalars[Scalar.momentum], decay: parameter.decays ? weightDecay : 0,
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
  private let firstMoments: [Tensor]
  private let secondMoments: [Tensor]
  private let names: [String]
  private var steps = 0
  private let backend: Backend
  /// The step's scalars on the backend: step size, √(1 − β₂ᵗ), decay factor.
  private let scalars: StepScalars
  private enum Scalar { static let stepSize = 0, rootCorrection2 = 1, decayFactor = 2 }

  public init(
    parameters: [Parameter], beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0.01, backend: Backend
  ) {
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weightDecay = weightDecay
    self.backend = backend
    firstMoments = parameters.map { backend.makeTensor(shape: [$0.count]) }
    secondMoments = parameters.map { backend.makeTensor(shape: [$0.count]) }
    names = parameters.map { $0.name }
    scalars = StepScalars(count: 3, backend: backend)
  }

  public var state: [(name: String, tensor: Tensor)] {
    zip(names, firstMoments).map { ("adam.m/" + $0, $1) } + zip(names, secondMoments).map { ("adam.v/" + $0, $1) }
  }

  public var counters: [String: Int] {
    get { ["adam.steps": steps] }
    set { steps = newValue["adam.steps"] ?? 0 }
  }

  public func prepare(learningRate: Float, momentum: Float?) {
    steps += 1
    let correction1 = 1 - Float(pow(Double(beta1), Double(steps)))
    let correction2 = 1 - Float(pow(Double(beta2), Double(steps)))
    scalars.set(Scalar.stepSize, to: learningRate / correction1)
    scalars.set(Scalar.rootCorrection2, to: correction2.squareRoot())
    scalars.set(Scalar.decayFactor, to: 1 - learningRate * weightDecay)
    scalars.write()
  }

  public func update(_ parameters: [Parameter]) {
    for (index, parameter) in parameters.enumerated() {
      backend.adamWStep(
        weight: parameter.value, gradient: parameter.gradient, first: firstMoments[index], second: secondMoments[index],
        count: parameter.count, beta1: beta1, beta2: beta2, epsilon: epsilon,
        decayFactor: parameter.decays ? scalars[Scalar.decayFactor] : nil, stepSize: scalars[Scalar.stepSize],
        rootCorrection2: scalars[Scalar.rootCorrection2])
    }
  }
}
