import CLZ4

/// LZ4 frames with a content checksum and the content size in the header: the one place
/// liblz4 is called, turning its error codes into `WireError`s.
enum LZ4Frame {
  static func compress(_ bytes: [UInt8]) throws -> [UInt8] {
    var preferences = LZ4F_preferences_t()
    preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
    preferences.frameInfo.contentSize = UInt64(bytes.count)
    let bound = LZ4F_compressFrameBound(bytes.count, &preferences)
    var output = [UInt8](repeating: 0, count: bound)
    let written = output.withUnsafeMutableBytes { destination in
      bytes.withUnsafeBytes { LZ4F_compressFrame(destination.baseAddress, bound, $0.baseAddress, bytes.count, &preferences) }
    }
    if LZ4F_isError(written) != 0 { throw WireError("LZ4 compression failed: \(String(cString: LZ4F_getErrorName(written)))") }
    return Array(output.prefix(written))
  }

  /// Decodes one frame that must hold exactly `expected` bytes and nothing after it.
  static func decompress(_ frame: [UInt8], expected: Int, context label: String) throws -> [UInt8] {
    var context: OpaquePointer?
    guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
      throw WireError("\(label): LZ4 could not start")
    }
    defer { LZ4F_freeDecompressionContext(context) }
    var output = [UInt8](repeating: 0, count: expected)
    var produced = 0
    var consumed = 0
    var hint = 1
    try output.withUnsafeMutableBytes { destination in
      try frame.withUnsafeBytes { source in
        // liblz4 may stop early; go on while it makes progress and the frame is unfinished.
        while hint != 0 && consumed < frame.count {
          var room = expected - produced
          var available = frame.count - consumed
          hint = LZ4F_decompress(context, destination.baseAddress! + produced, &room, source.baseAddress! + consumed, &available, nil)
          if LZ4F_isError(hint) != 0 {
            throw WireError("\(label): corrupt LZ4 frame (\(String(cString: LZ4F_getErrorName(hint))))")
          }
          if room == 0 && available == 0 { break }
          produced += room
          consumed += available
        }
      }
    }
    guard hint == 0 else {
      throw WireError(produced >= expected
        ? "\(label): the frame holds more than the declared \(expected) bytes"
        : "\(label): truncated LZ4 frame (\(produced) of \(expected) bytes)")
    }
    guard produced == expected else { throw WireError("\(label): decoded \(produced) bytes, declared \(expected)") }
    guard consumed == frame.count else { throw WireError("\(label): \(frame.count - consumed) bytes after the LZ4 frame") }
    return output
  }
}
