import Tensor

/// How a parameter's storage order differs from PyTorch's, for checkpoints that load in
/// torchvision. Quorum keeps the order its kernels read fastest.
public enum CheckpointLayout: Sendable, Equatable {
  /// Same order (1×1 convolutions [Cout, Cin], linear [O, K], vectors).
  case identity
  /// Quorum [3, 3, C] ↔ PyTorch [C, 1, 3, 3].
  case depthwise
  /// Quorum [Cout, 3, 3, Cin] ↔ PyTorch [Cout, Cin, 3, 3].
  case convolution3x3
}

/// A trainable tensor, its gradient and how it is saved.
public final class Parameter {
  /// torchvision's state_dict name, e.g. "features.1.conv.0.0.weight".
  public let name: String
  public let value: Tensor
  public let gradient: Tensor
  /// Whether weight decay applies (not to batch-norm scales/shifts nor to biases).
  public let decays: Bool
  public let layout: CheckpointLayout
  /// The shape PyTorch gives this parameter.
  public let checkpointShape: [Int]

  /// A parameter whose value and gradient are `backend`'s tensors (zero-filled).
  public init(
    name: String, shape: [Int], checkpointShape: [Int]? = nil, decays: Bool, layout: CheckpointLayout = .identity, backend: Backend
  ) {
    self.name = name
    value = backend.makeTensor(shape: shape)
    gradient = backend.makeTensor(shape: shape)
    self.decays = decays
    self.layout = layout
    self.checkpointShape = checkpointShape ?? shape
    precondition(self.checkpointShape.reduce(1, *) == value.capacity)
  }

  public var count: Int { value.capacity }
}

/// A non-trainable state tensor saved with the model (batch-norm running statistics).
public final class Buffer {
  public let name: String
  public let value: Tensor
  public init(name: String, count: Int, backend: Backend) {
    self.name = name
    value = backend.makeTensor(shape: [count])
  }
}
