import Foundation
import Wire

/// Where results land in the run directory: logits/TASK.NAME.npy (float32, readable by
/// numpy), each written to a temporary name, fsync'd and renamed, so a crash leaves the
/// old state or the new, never half a file.
public struct ResultStore {
  public let runDirectory: String

  public init(runDirectory: String) { self.runDirectory = runDirectory }

  public func path(task: String, tensor: String) -> String { "\(runDirectory)/logits/\(task).\(tensor).npy" }

  public func store(_ result: TaskResult) throws {
    for tensor in result.tensors {
      let path = path(task: result.task, tensor: tensor.name)
      try FileManager.default.createDirectory(
        at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
      let temporary = path + ".tmp"
      var bytes = npyHeader(shape: tensor.shape)
      tensor.values.withUnsafeBytes { bytes += $0 }
      let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
      guard descriptor >= 0 else { throw ResultStoreError(path: temporary, String(cString: strerror(errno))) }
      let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
      let synced = fsync(descriptor) == 0
      close(descriptor)
      guard written == bytes.count, synced, rename(temporary, path) == 0 else {
        throw ResultStoreError(path: path, String(cString: strerror(errno)))
      }
    }
  }

  /// .npy version 1.0 header for little-endian float32 of this shape, padded to 64 bytes.
  func npyHeader(shape: [Int]) -> [UInt8] {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var text = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
    text += String(repeating: " ", count: (64 - (10 + text.utf8.count + 1) % 64) % 64) + "\n"
    let length = UInt16(text.utf8.count)
    return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(text.utf8)
  }
}

public struct ResultStoreError: Error, CustomStringConvertible {
  let path: String
  let problem: String
  init(path: String, _ problem: String) {
    self.path = path
    self.problem = problem
  }
  public var description: String { "\(path): cannot be written: \(problem)" }
}
