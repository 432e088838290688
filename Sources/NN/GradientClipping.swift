import Tensor

/// Scales all gradients together so that their global L2 norm is at most `maximumNorm`
/// (PyTorch's `clip_grad_norm_`). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maximumNorm: Float) -> Double {
  var sumOfSquares = 0.0
  for parameter in parameters {
    let g = parameter.gradient.data
    var partial: Float = 0
    for i in 0..<parameter.count { partial += g[i] * g[i] }
    sumOfSquares += Double(partial)
  }
  let norm = sumOfSquares.squareRoot()
  let factor = Float(Double(maximumNorm) / (norm + 1e-6))
  if factor < 1 {
    for parameter in parameters {
      let g = parameter.gradient.data
      for i in 0..<parameter.count { g[i] *= factor }
    }
  }
  return norm
}
