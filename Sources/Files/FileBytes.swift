import CZlib
import Foundation

/// Whole-file reads, gunzipping transparently, and crash-safe writes.
public enum FileBytes {
  /// The file's bytes; a gzip file (magic 1f 8b) is decompressed, and a truncated or
  /// corrupt stream is an error rather than silently short data.
  public static func read(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
      var isDirectory: ObjCBool = false
      let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
      throw DataError(
        file: path,
        !exists ? "no such file" : isDirectory.boolValue ? "is a directory, not a file"
          : FileManager.default.isReadableFile(atPath: path) ? "could not be read (an I/O error)"
          : "cannot be read by this user: check its permissions")
    }
    let bytes = [UInt8](data)
    if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
      return try gunzip(bytes, path: path)
    }
    return bytes
  }

  static func gunzip(_ compressed: [UInt8], path: String) throws -> [UInt8] {
    var stream = z_stream()
    // 15 + 16: a 32 KiB window with a gzip header and trailer (CRC checked by zlib).
    guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
      throw DataError(file: path, "zlib could not start")
    }
    defer { inflateEnd(&stream) }
    var output = [UInt8]()
    output.reserveCapacity(compressed.count * 4)
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    var status: Int32 = Z_OK
    compressed.withUnsafeBufferPointer { input in
      stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
      stream.avail_in = UInt32(input.count)
      repeat {
        chunk.withUnsafeMutableBufferPointer { buffer in
          stream.next_out = buffer.baseAddress
          stream.avail_out = UInt32(buffer.count)
          status = inflate(&stream, Z_NO_FLUSH)
          output.append(contentsOf: buffer[0..<(buffer.count - Int(stream.avail_out))])
        }
      } while status == Z_OK
    }
    switch status {
    case Z_STREAM_END: return output
    case Z_BUF_ERROR: throw DataError(file: path, "gzip stream is truncated (ends after \(output.count) decompressed bytes)")
    default:
      let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
      throw DataError(file: path, "gzip stream is corrupt: \(reason)")
    }
  }

  /// Writes all of `bytes` to an open file, through short writes; 0, or the errno of the
  /// write that failed (read right after it: any later call may overwrite it).
  public static func writeAll(_ bytes: [UInt8], to descriptor: Int32) -> Int32 {
    var written = 0
    var failure: Int32 = 0
    bytes.withUnsafeBytes { buffer in
      while written < buffer.count {
        let result = write(descriptor, buffer.baseAddress! + written, buffer.count - written)
        if result < 0 { failure = errno; return }
        if result == 0 { failure = ENOSPC; return }
        written += result
      }
    }
    return failure
  }

  /// Writes `bytes` so that a crash leaves either the old file or the new one: a
  /// temporary file in the same folder, fsync'd, then renamed over the target.
  public static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let url = URL(fileURLWithPath: path)
    if Folders.isFolder(path) { throw DataError(file: path, "is a folder: name a file to write") }
    try Folders.create(url.deletingLastPathComponent().path)
    let temporary = path + ".tmp-\(getpid())"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else { throw DataError(file: path, "cannot be written: \(String(cString: strerror(errno)))") }
    var failure = writeAll(bytes, to: descriptor)
    if failure == 0 && fsync(descriptor) != 0 { failure = errno }
    close(descriptor)
    if failure == 0 && rename(temporary, path) != 0 { failure = errno }
    guard failure == 0 else {
      unlink(temporary)
      throw DataError(file: path, "cannot be written: \(String(cString: strerror(failure)))")
    }
    // Make the rename itself durable.
    let folder = open(url.deletingLastPathComponent().path, O_RDONLY)
    if folder >= 0 {
      fsync(folder)
      close(folder)
    }
  }
}
