import Tensor

/// Scales all gradients together so that their global L2 norm is at most `maximumNorm`
/// (PyTorch's `clip_grad_norm_`), on the backend that holds them: nothing is read back, so
/// a step does not wait for the norm. `norm` reads the norm before the last clip. With an
/// infinite `maximumNorm` it only measures (`measuring`: a step log's gradient norm).
public final class GradientClipper {
  public let maximumNorm: Float
  private let gradients: [Tensor]
  private let backend: Backend
  /// The global norm before the last `clip`, on the backend (one value).
  public let normValue: Tensor

  public init(_ parameters: [Parameter], maximumNorm: Float, backend: Backend) {
    self.maximumNorm = maximumNorm
    self.backend = backend
    gradients = parameters.map(\.gradient)
    normValue = backend.makeTensor(shape: [1])
  }

  /// Measures the global norm at every `clip` and scales nothing.
  public static func measuring(_ parameters: [Parameter], backend: Backend) -> GradientClipper {
    GradientClipper(parameters, maximumNorm: .infinity, backend: backend)
  }

  public func clip() { backend.clipGradientNorm(gradients, maximumNorm: maximumNorm, norm: normValue) }

  /// The global norm before the last `clip` (a synchronisation point).
  public var norm: Float { backend.download(normValue, count: 1)[0] }
}
