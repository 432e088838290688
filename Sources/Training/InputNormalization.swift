/// The per-channel mean and standard deviation a model's inputs are normalised by:
/// (pixel/255 − mean)/std.
public enum InputNormalization: String, Codable, CaseIterable, Sendable {
  /// The training images' own channel statistics (training from scratch).
  case dataset
  /// ImageNet's, which torchvision's pretrained weights were trained with: mean (0.485,
  /// 0.456, 0.406), std (0.229, 0.224, 0.225); for grey images their means (0.449,
  /// 0.226), as a stem summed over the colours sees them.
  case imagenet

  static let imageNetMean: [Float] = [0.485, 0.456, 0.406]
  static let imageNetStd: [Float] = [0.229, 0.224, 0.225]

  /// The statistics for `channels`-channel images whose own are `dataset()`.
  public func statistics(channels: Int, dataset: () -> (mean: [Float], std: [Float])) throws -> (mean: [Float], std: [Float]) {
    switch self {
    case .dataset: return dataset()
    case .imagenet:
      switch channels {
      case 3: return (Self.imageNetMean, Self.imageNetStd)
      case 1: return ([Self.imageNetMean.reduce(0, +) / 3], [Self.imageNetStd.reduce(0, +) / 3])
      default:
        throw TrainingError.invalidConfiguration("ImageNet's normalisation is for 1 or 3 channels, the images have \(channels)")
      }
    }
  }
}

extension KeyedDecodingContainer {
  /// A configuration saved before `normalization` existed was normalised by its data set.
  func decode(_ type: InputNormalization.Type, forKey key: Key) throws -> InputNormalization {
    try decodeIfPresent(type, forKey: key) ?? .dataset
  }
}
