import Files
import Foundation
import Tensor

/// Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) of a batch with itself reversed
/// (as timm does: batches are already shuffled), with the mixed labels as soft targets.
/// λ ~ Beta(α, α) is drawn per batch from a stream keyed by (seed, step).
public struct Mixing: Codable, Equatable, Sendable {
  /// Mixup's α (0: off).
  public var mixup: Double
  /// CutMix's α (0: off). With both on, each batch picks one with equal probability.
  public var cutmix: Double
  /// Probability that a batch is mixed at all.
  public var probability: Double

  public init(mixup: Double = 0, cutmix: Double = 0, probability: Double = 1) {
    self.mixup = mixup
    self.cutmix = cutmix
    self.probability = probability
  }

  public static let none = Mixing()
  public var isActive: Bool { (mixup > 0 || cutmix > 0) && probability > 0 }

  public func validate() throws {
    // Past α = 100 the Beta(α, α) draw is ½ to two decimals: a larger α is a typo.
    guard (0...100).contains(mixup), (0...100).contains(cutmix) else {
      throw DataError(file: "mixing", "mixup and CutMix α must be in 0…100, got \(mixup) and \(cutmix)")
    }
    guard (0...1).contains(probability) else { throw DataError(file: "mixing", "mixing probability must be in [0, 1], got \(probability)") }
  }

  /// Mixes `images` [batch, H, W, C] in place (using `partner` as scratch of the same
  /// size) and writes the soft targets [batch, classes]. Returns λ, the weight of each
  /// example's own label, or nil when this batch is not mixed (targets untouched).
  public func apply(
    images: Tensor, partner: Tensor, labels: UnsafePointer<Int32>, batch: Int, height: Int, width: Int, channels: Int,
    classes: Int, targets: Tensor, seed: UInt64, step: Int
  ) -> Double? {
    guard isActive, batch >= 2 else { return nil }
    var draws = RandomDraws(stream: RandomStream(seed: seed, purpose: .augmentation, stream: UInt32(truncatingIfNeeded: step) ^ 0x4000_0000))
    guard draws.uniform() < probability else { return nil }
    let useCutmix = cutmix > 0 && (mixup == 0 || draws.uniform() < 0.5)
    var lambda = draws.beta(useCutmix ? cutmix : mixup)
    let imageSize = height * width * channels
    partner.copy(from: images, count: batch * imageSize)
    if useCutmix {
      // A box of area (1 − λ)·H·W around a uniform centre, clipped; λ then follows the
      // area actually pasted.
      let ratio = (1 - lambda).squareRoot()
      let (boxHeight, boxWidth) = (Int(Double(height) * ratio), Int(Double(width) * ratio))
      let (centreY, centreX) = (Int(draws.uniform() * Double(height)), Int(draws.uniform() * Double(width)))
      let top = max(centreY - boxHeight / 2, 0), bottom = min(centreY + boxHeight / 2, height)
      let left = max(centreX - boxWidth / 2, 0), right = min(centreX + boxWidth / 2, width)
      for n in 0..<batch {
        let source = partner.data + (batch - 1 - n) * imageSize
        let destination = images.data + n * imageSize
        for y in top..<bottom {
          (destination + (y * width + left) * channels).update(from: source + (y * width + left) * channels, count: (right - left) * channels)
        }
      }
      lambda = 1 - Double((bottom - top) * (right - left)) / Double(height * width)
    } else {
      let (a, b) = (Float(lambda), Float(1 - lambda))
      for n in 0..<batch {
        let source = partner.data + (batch - 1 - n) * imageSize
        let destination = images.data + n * imageSize
        for i in 0..<imageSize { destination[i] = a * destination[i] + b * source[i] }
      }
    }
    targets.fill(0, count: batch * classes)
    for n in 0..<batch {
      targets[n * classes + Int(labels[n])] += Float(lambda)
      targets[n * classes + Int(labels[batch - 1 - n])] += Float(1 - lambda)
    }
    return lambda
  }
}

/// Consecutive draws from a counter-based stream.
struct RandomDraws {
  let stream: RandomStream
  var index: UInt64 = 0

  mutating func uniform() -> Double {
    defer { index += 1 }
    let word = stream.bits(at: index)
    return (Double(word.0) + Double(word.1) / 4_294_967_296.0) / 4_294_967_296.0
  }

  mutating func normal() -> Double {
    let u1 = 1 - uniform()
    return (-2 * log(u1)).squareRoot() * cos(2 * .pi * uniform())
  }

  /// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 through Gamma(shape + 1)·U^(1/shape).
  mutating func gamma(_ shape: Double) -> Double {
    if shape < 1 { return gamma(shape + 1) * pow(1 - uniform(), 1 / shape) }
    let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
    while true {
      let x = normal()
      let v = pow(1 + c * x, 3)
      if v <= 0 { continue }
      let u = 1 - uniform()
      if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
    }
  }

  /// Beta(α, α).
  mutating func beta(_ alpha: Double) -> Double {
    let a = gamma(alpha), b = gamma(alpha)
    return a / (a + b)
  }
}
