#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
///
/// A counter-based generator: the output is a pure function of (key, counter). Quorum keys
/// every random draw by what it is for (seed, purpose, step, example), so a task re-run on
/// another worker, another thread count or another backend draws the same numbers, and
/// resuming a run needs no generator state beyond the step counter.
public enum Philox {
  private static let multiplier0: UInt32 = 0xD251_1F53
  private static let multiplier1: UInt32 = 0xCD9E_8D57
  private static let weyl0: UInt32 = 0x9E37_79B9
  private static let weyl1: UInt32 = 0xBB67_AE85

  /// Ten rounds of Philox4x32 on `counter` under `key`.
  @inline(__always)
  public static func block(
    _ counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32)
  ) -> (UInt32, UInt32, UInt32, UInt32) {
    var c = counter
    var k = key
    for round in 0..<10 {
      if round > 0 {
        k.0 &+= weyl0
        k.1 &+= weyl1
      }
      let product0 = UInt64(multiplier0) * UInt64(c.0)
      let product1 = UInt64(multiplier1) * UInt64(c.2)
      c = (
        UInt32(truncatingIfNeeded: product1 >> 32) ^ c.1 ^ k.0,
        UInt32(truncatingIfNeeded: product1),
        UInt32(truncatingIfNeeded: product0 >> 32) ^ c.3 ^ k.1,
        UInt32(truncatingIfNeeded: product0)
      )
    }
    return c
  }
}

/// What a random stream is used for; part of the Philox counter so that purposes never
/// share numbers.
public enum RandomPurpose: UInt32, Sendable {
  case initialization = 1
  case shuffle = 2
  case dropout = 3
  case stochasticDepth = 4
  case augmentation = 5
  case split = 6
  case ensemble = 7
  /// A hyper-parameter search's samples (trial, candidate).
  case search = 8
}

/// A stream of random numbers addressed by index: `uniform(at: i)` is the same on every
/// machine for the same (seed, purpose, stream).
public struct RandomStream: Sendable {
  public let seed: UInt64
  public let purpose: RandomPurpose
  /// A further coordinate: the step, the epoch, the parameter index.
  public let stream: UInt32

  public init(seed: UInt64, purpose: RandomPurpose, stream: UInt32 = 0) {
    self.seed = seed
    self.purpose = purpose
    self.stream = stream
  }

  @inline(__always)
  public func bits(at index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
    Philox.block(
      (UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32),
       stream, purpose.rawValue),
      key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
  }

  /// A uniform float in [0, 1), with 24 random bits.
  @inline(__always)
  public func uniform(at index: UInt64) -> Float {
    Float(bits(at: index).0 >> 8) * (1.0 / 16_777_216.0)
  }

  /// A standard normal deviate (Box-Muller on two 32-bit words, in double precision).
  @inline(__always)
  public func normal(at index: UInt64) -> Float {
    let word = bits(at: index)
    let u1 = (Double(word.0) + 1) / 4_294_967_296.0  // (0, 1]: log is finite
    let u2 = Double(word.1) / 4_294_967_296.0
    return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
  }

  /// A uniform integer in 0..<bound, by 64-bit multiply-shift (bias below 2^-32).
  @inline(__always)
  public func integer(below bound: Int, at index: UInt64) -> Int {
    let word = bits(at: index)
    let random64 = UInt64(word.0) | (UInt64(word.1) << 32)
    return Int(random64.multipliedFullWidth(by: UInt64(bound)).high)
  }

  /// A permutation of 0..<count (Fisher-Yates driven by the stream).
  public func permutation(_ count: Int) -> [Int] {
    var order = Array(0..<count)
    if count < 2 { return order }
    for i in stride(from: count - 1, to: 0, by: -1) {
      order.swapAt(i, integer(below: i + 1, at: UInt64(i)))
    }
    return order
  }
}
