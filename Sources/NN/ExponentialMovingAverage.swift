import Tensor

/// An exponential moving average of the weights and batch-norm statistics:
/// shadow ← d·shadow + (1 − d)·value after every step. Evaluating with the average
/// usually generalises better late in training.
public final class ExponentialMovingAverage {
  public let decay: Float
  let parameters: [Parameter]
  let buffers: [Buffer]
  /// The live tensors the average follows: parameters, then running statistics.
  let values: [Tensor]
  let shadows: [Tensor]
  let stash: [Tensor]
  let backend: Backend

  public init(model: MobileNetV2, decay: Float) {
    self.decay = decay
    let backend = model.backend
    self.backend = backend
    parameters = model.parameters
    buffers = model.norms.flatMap { [$0.runningMean, $0.runningVariance] }
    let values = parameters.map { $0.value } + buffers.map { $0.value }
    self.values = values
    shadows = values.map { value in
      let shadow = backend.makeTensor(shape: [value.capacity])
      backend.copy(value, to: shadow, count: value.capacity)
      return shadow
    }
    stash = values.map { backend.makeTensor(shape: [$0.capacity]) }
  }

  /// Named shadows for checkpoints.
  public var state: [(name: String, tensor: Tensor)] {
    zip(parameters.map { $0.name } + buffers.map { $0.name }, shadows).map { ("ema/" + $0, $1) }
  }

  /// Restarts the average at the live values (after the weights were replaced).
  public func reset() {
    for (value, shadow) in zip(values, shadows) { backend.copy(value, to: shadow, count: value.capacity) }
  }

  public func update() {
    for (value, shadow) in zip(values, shadows) {
      backend.exponentialMovingAverage(shadow: shadow, value: value, count: value.capacity, decay: decay)
    }
  }

  /// Runs `body` with the averaged weights in the model, then puts the live ones back.
  public func withAveragedWeights<T>(_ body: () throws -> T) rethrows -> T {
    for (index, value) in values.enumerated() {
      backend.copy(value, to: stash[index], count: value.capacity)
      backend.copy(shadows[index], to: value, count: value.capacity)
    }
    defer { for (index, value) in values.enumerated() { backend.copy(stash[index], to: value, count: value.capacity) } }
    return try body()
  }

  /// Replaces the live weights by the averaged ones for good (at the end of training).
  public func copyToModel() {
    for (value, shadow) in zip(values, shadows) { backend.copy(shadow, to: value, count: value.capacity) }
  }
}
