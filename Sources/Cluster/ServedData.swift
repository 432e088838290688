import Files
import Foundation
import Wire

/// The data set a coordinator serves to its workers (`data_access: served`): a bundle file
/// (`DataBundle`) read a chunk at a time, so serving it costs one chunk of memory however
/// many workers fetch it at once.
public final class ServedData {
  public let offer: DataOffer
  public let path: String
  private let descriptor: Int32

  public init(path: String, hash: String, bytes: Int) throws {
    descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { throw DataError(file: path, "cannot be opened to serve: \(String(cString: strerror(errno)))") }
    self.path = path
    offer = DataOffer(hash: hash, bytes: bytes)
  }

  deinit { close(descriptor) }

  /// The answer to `request`: its bytes, or a refusal saying what is wrong with it.
  func answer(_ request: DataRequest) -> DataChunk {
    func refuse(_ problem: String) -> DataChunk {
      DataChunk(hash: request.hash, offset: request.offset, total: offer.bytes, bytes: [], refusal: problem)
    }
    guard request.hash == offer.hash else {
      return refuse("this coordinator serves the data set \(offer.hash.prefix(12))…, not \(request.hash.prefix(12))…")
    }
    guard request.offset >= 0, request.length > 0, request.length <= Framing.chunkBytes, request.offset <= offer.bytes - request.length else {
      return refuse("\(request.length) bytes at \(request.offset) are not a chunk of its \(offer.bytes) (at most \(Framing.chunkBytes) at a time)")
    }
    var bytes = [UInt8](repeating: 0, count: request.length)
    var done = 0
    while done < request.length {
      let read = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, request.length - done, off_t(request.offset + done)) }
      guard read > 0 else { return refuse("the coordinator cannot read \(path): \(read < 0 ? String(cString: strerror(errno)) : "it is shorter than \(offer.bytes) bytes")") }
      done += read
    }
    return DataChunk(hash: offer.hash, offset: request.offset, total: offer.bytes, bytes: bytes)
  }
}
