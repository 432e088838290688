import Foundation

/// What a result message declares, read from its header and metadata alone: which task and
/// attempt it answers, and the names, shapes and sizes of its tensors and files. A receiver
/// checks it (the lease, what the task must return) before a single frame is decompressed,
/// so a peer cannot make it decode what it would not store.
public struct ResultDeclaration: Equatable, Sendable {
  public struct Tensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var precision: WirePrecision
  }

  public struct File: Equatable, Sendable {
    public var name: String
    /// The file's declared (decompressed) size; nil where it overflows.
    public var bytes: Int?
  }

  public var task: String
  public var attempt: Int
  public var tensors: [Tensor]
  public var files: [File]
}

extension Framing {
  /// The declaration of a result message; nil for any other message, or one whose header
  /// or metadata does not parse (`decode` says why).
  public static func resultDeclaration(_ frames: [[UInt8]]) -> ResultDeclaration? {
    guard let header = frames.first, header.count >= 5, Array(header.prefix(3)) == magic, header[3] == version, header[4] == 5,
      header.count - 5 <= maximumMetadataBytes,
      let metadata = try? JSONDecoder().decode(ResultMetadata.self, from: Data(header.dropFirst(5)))
    else { return nil }
    return ResultDeclaration(
      task: metadata.task, attempt: metadata.attempt,
      tensors: metadata.tensors.map { .init(name: $0.name, shape: $0.shape, precision: $0.precision) },
      files: (metadata.files ?? []).map { .init(name: $0.name, bytes: declaredBytes($0.chunks)) })
  }

  /// The sum of a file's chunk sizes, nil where one is negative or the sum overflows.
  static func declaredBytes(_ chunks: [Int]) -> Int? {
    var total = 0
    for chunk in chunks {
      guard chunk >= 0 else { return nil }
      let (sum, overflow) = total.addingReportingOverflow(chunk)
      if overflow { return nil }
      total = sum
    }
    return total
  }
}
