import Tensor

/// The reference recipe's augmentation: a random shift after zero padding (torchvision's
/// RandomCrop(size, padding: p): shifts of −p…p in each axis) and a horizontal flip.
/// Each example's draw is keyed by (seed, epoch, example index), so a batch is the same
/// wherever and whenever it is assembled.
public struct Augmentation: Codable, Equatable, Sendable {
  /// Maximum shift in pixels in each direction (the padding).
  public var shift: Int
  /// Probability of a left-right flip.
  public var horizontalFlip: Double

  public init(shift: Int = 0, horizontalFlip: Double = 0) {
    self.shift = shift
    self.horizontalFlip = horizontalFlip
  }

  public static let none = Augmentation()
  public var isIdentity: Bool { shift == 0 && horizontalFlip == 0 }

  /// The transform of one example: (dy, dx, flip).
  @inline(__always)
  func draw(random: RandomStream, example: Int) -> (dy: Int, dx: Int, flip: Bool) {
    if isIdentity { return (0, 0, false) }
    let bits = random.bits(at: UInt64(example))
    let span = UInt32(2 * shift + 1)
    let dy = Int(bits.0 % span) - shift
    let dx = Int(bits.1 % span) - shift
    let flip = Double(bits.2 >> 8) / 16_777_216.0 < horizontalFlip
    return (dy, dx, flip)
  }
}
