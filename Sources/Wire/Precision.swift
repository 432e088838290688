/// Conversions to and from the 16-bit wire formats (the CUDA kernels' bfloat16.cuh rounds
/// the same way, bit for bit: CUDATests checks it).
public enum Precision {
  /// IEEE half precision, rounded to nearest even (Swift's Float16).
  public static func toFloat16(_ value: Float) -> UInt16 { Float16(value).bitPattern }
  public static func fromFloat16(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

  /// bfloat16: the top 16 bits of a float32, rounded to nearest even; every NaN becomes
  /// the canonical quiet NaN 0x7FC0, as PyTorch's c10::BFloat16.
  public static func toBFloat16(_ value: Float) -> UInt16 {
    if value.isNaN { return 0x7FC0 }
    let bits = value.bitPattern
    let rounding = 0x7FFF + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
  }

  public static func fromBFloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}

/// Byte shuffling: all values' byte 0, then all byte 1, … Repeating high bytes (signs,
/// exponents) then sit together, which LZ4 compresses.
enum ByteShuffle {
  public static func shuffle(_ bytes: [UInt8], elementSize: Int) -> [UInt8] {
    let count = bytes.count / elementSize
    var output = [UInt8](repeating: 0, count: bytes.count)
    for i in 0..<count { for b in 0..<elementSize { output[b * count + i] = bytes[i * elementSize + b] } }
    return output
  }

  public static func unshuffle(_ bytes: [UInt8], elementSize: Int) -> [UInt8] {
    let count = bytes.count / elementSize
    var output = [UInt8](repeating: 0, count: bytes.count)
    for i in 0..<count { for b in 0..<elementSize { output[i * elementSize + b] = bytes[b * count + i] } }
    return output
  }
}
