/// The shape of a MobileNetV2 (Sandler et al. 2018) and its regularisation.
public struct MobileNetV2Configuration: Codable, Equatable, Sendable {
  /// Named stride settings: `imagenet` as in the paper; `cifar` keeps resolution early
  /// (stem stride 1, second stage stride 1), as CIFAR ports do for small images.
  public enum Preset: String, CaseIterable, Codable, Sendable {
    case imagenet, cifar

    public var stemStride: Int { self == .imagenet ? 2 : 1 }
    public var stageStrides: [Int] { self == .imagenet ? [1, 2, 2, 2, 1, 2, 1] : [1, 1, 2, 2, 1, 2, 1] }
  }

  /// The inverted-residual stages (expansion t, channels c, blocks n); strides separate.
  public static let stages: [(expansion: Int, channels: Int, blocks: Int)] = [
    (1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1),
  ]

  public var width: Double
  public var inputChannels: Int
  public var classes: Int
  public var imageHeight: Int
  public var imageWidth: Int
  public var stemStride: Int
  /// Stride of the first block of each of the seven stages.
  public var stageStrides: [Int]
  /// Dropout probability before the classifier.
  public var dropout: Float
  /// Stochastic depth: the drop probability of the last residual block; block i of B
  /// drops with probability stochasticDepth · i / B (only blocks with a residual).
  public var stochasticDepth: Float

  public init(
    preset: Preset = .imagenet, width: Double = 1, inputChannels: Int = 1, classes: Int = 10,
    imageHeight: Int = 28, imageWidth: Int = 28, stemStride: Int? = nil,
    stageStrides: [Int]? = nil, dropout: Float = 0.2, stochasticDepth: Float = 0
  ) {
    self.width = width
    self.inputChannels = inputChannels
    self.classes = classes
    self.imageHeight = imageHeight
    self.imageWidth = imageWidth
    self.stemStride = stemStride ?? preset.stemStride
    self.stageStrides = stageStrides ?? preset.stageStrides
    self.dropout = dropout
    self.stochasticDepth = stochasticDepth
  }

  /// The preset whose strides these are, else "custom strides" (for logs).
  public var presetName: String {
    Preset.allCases.first { $0.stemStride == stemStride && $0.stageStrides == stageStrides }?.rawValue ?? "custom strides"
  }

  /// Checks the values a user can get wrong, naming the field.
  public func validate() throws {
    func fail(_ message: String) -> MobileNetV2Error { .invalidConfiguration(message) }
    // Past 4× the channel counts (and the weights, 16×) outgrow any device this trains on.
    guard width.isFinite, width > 0, width <= 4 else { throw fail("width must be in (0, 4], got \(width)") }
    guard inputChannels > 0 else { throw fail("input channels must be positive, got \(inputChannels)") }
    guard classes >= 2 else { throw fail("classes must be at least 2, got \(classes)") }
    guard imageHeight > 0, imageWidth > 0 else { throw fail("image size must be positive") }
    guard [1, 2].contains(stemStride) else { throw fail("stem stride must be 1 or 2, got \(stemStride)") }
    guard stageStrides.count == 7, stageStrides.allSatisfy({ [1, 2].contains($0) }) else {
      throw fail("stage strides must be 7 values of 1 or 2, got \(stageStrides)")
    }
    guard (0..<1).contains(dropout) else { throw fail("dropout must be in [0, 1), got \(dropout)") }
    guard (0..<1).contains(stochasticDepth) else {
      throw fail("stochastic depth must be in [0, 1), got \(stochasticDepth)")
    }
  }

  /// torchvision's `_make_divisible`: round to a multiple of `divisor`, never more than
  /// 10 % below the exact value.
  public static func makeDivisible(_ value: Double, divisor: Int = 8) -> Int {
    var rounded = max(divisor, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
  }

  public var stemChannels: Int { Self.makeDivisible(32 * width) }
  public var lastChannels: Int { Self.makeDivisible(1280 * max(1, width)) }
}

public enum MobileNetV2Error: Error, CustomStringConvertible {
  case invalidConfiguration(String)
  public var description: String {
    switch self {
    case .invalidConfiguration(let message): return "invalid model configuration: \(message)"
    }
  }
}
