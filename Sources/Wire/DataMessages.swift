/// A data set the coordinator serves to workers (`data_access: served`), named in each task
/// lease: its SHA-256 and size. A worker without it in its cache asks for it in chunks.
public struct DataOffer: Codable, Equatable, Sendable {
  public var hash: String
  public var bytes: Int

  public init(hash: String, bytes: Int) {
    self.hash = hash
    self.bytes = bytes
  }
}

/// A worker asks for bytes [offset, offset + length) of the data set `hash` (at most
/// `Framing.chunkBytes` at a time).
public struct DataRequest: Codable, Equatable, Sendable {
  public var hash: String
  public var offset: Int
  public var length: Int

  public init(hash: String, offset: Int, length: Int) {
    self.hash = hash
    self.offset = offset
    self.length = length
  }
}

/// The coordinator's answer to a `DataRequest`: the bytes (one LZ4 frame after the header),
/// or why it cannot send them.
public struct DataChunk: Equatable, Sendable {
  public var hash: String
  public var offset: Int
  /// The data set's size, so that the worker knows when it has all of it.
  public var total: Int
  public var bytes: [UInt8]
  public var refusal: String?

  public init(hash: String, offset: Int, total: Int, bytes: [UInt8], refusal: String? = nil) {
    self.hash = hash
    self.offset = offset
    self.total = total
    self.bytes = bytes
    self.refusal = refusal
  }
}
