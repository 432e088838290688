import Tensor

/// Grad-CAM (Selvaraju et al., 2017): where in an image a model found the evidence for a
/// class. The class's logit is differentiated (in evaluation mode) with respect to a block's
/// output A; each channel's weight is its gradient averaged over the map, and the heat map
/// is ReLU(Σ_c α_c·A_c), scaled to a largest value of 1.
///
/// The block is the deepest whose map is at least `minimumSide` on its shorter side: on
/// 28×28 images the imagenet preset's last map is 1×1, which locates nothing.
public struct GradCAM {
  public let model: MobileNetV2
  public let block: Int
  private let logitGradient: Tensor

  public init(model: MobileNetV2, minimumSide: Int = 4) {
    precondition(!model.inferenceOnly, "Grad-CAM needs a model that keeps its activations")
    self.model = model
    let sides = (0..<model.blockCount).map { model.blockOutput($0).geometry }.map { min($0.height, $0.width) }
    block = sides.lastIndex { $0 >= minimumSide } ?? model.blockCount - 1
    logitGradient = model.backend.makeTensor(shape: [model.configuration.classes])
  }

  /// The heat map of `classIndex` for one normalised image [1, H, W, C], at the block's
  /// resolution (row-major height × width, values in 0…1; all zero where no location
  /// speaks for the class).
  public func heatMap(_ image: Tensor, classIndex: Int) -> (values: [Float], height: Int, width: Int) {
    let backend = model.backend
    model.forward(image, batch: 1, training: false)
    backend.upload((0..<model.configuration.classes).map { $0 == classIndex ? 1 : 0 }, to: logitGradient)
    let (geometry, output) = model.blockOutput(block)
    let (positions, channels) = (geometry.height * geometry.width, geometry.channels)
    let activations = backend.download(output, count: positions * channels)
    var weights = [Float](repeating: 0, count: channels)
    model.backward(logitGradient: logitGradient, batch: 1, training: false) { index, gradient in
      guard index == block else { return }
      let values = backend.download(gradient, count: positions * channels)
      for p in 0..<positions { for c in 0..<channels { weights[c] += values[p * channels + c] } }
    }
    var map = (0..<positions).map { p -> Float in
      var sum: Float = 0
      for c in 0..<channels { sum += weights[c] * activations[p * channels + c] }
      return max(sum / Float(positions), 0)
    }
    let largest = map.max() ?? 0
    if largest > 0 { map = map.map { $0 / largest } }
    return (map, geometry.height, geometry.width)
  }
}
