import Files
import Foundation
import Wire

/// A worker's fetches of served data sets (`data_access: served`): a task thread asks for
/// the data set its lease names; the worker's loop sends the requests and hands back the
/// chunks as they come. A few chunks are asked for at once (the round trips overlap); a
/// chunk that does not come in time (the coordinator restarted, the connection was made
/// again) is asked for again.
public final class DataTransfers: @unchecked Sendable {
  private let condition = NSCondition()
  /// Sends a message through the worker's loop (set by the worker while it runs).
  var post: ((Message) -> Void)? {
    get {
      condition.lock()
      defer { condition.unlock() }
      return poster
    }
    set {
      condition.lock()
      poster = newValue
      condition.unlock()
    }
  }
  private var poster: ((Message) -> Void)?
  /// Chunks received and not yet taken: hash → offset → chunk.
  private var arrived: [String: [Int: DataChunk]] = [:]
  /// Hashes a task thread is fetching now (chunks of others are dropped).
  private var wanted: Set<String> = []

  public init() {}

  /// From the worker's loop.
  func deliver(_ chunk: DataChunk) {
    condition.lock()
    if wanted.contains(chunk.hash) {
      arrived[chunk.hash, default: [:]][chunk.offset] = chunk
      condition.broadcast()
    }
    condition.unlock()
  }

  /// Fetches data set `offer` into `path` (a temporary file, then renamed), checking its
  /// SHA-256 against the offer's. `window` chunks are asked for at a time; a chunk missing
  /// for `patience` seconds is asked for again, and after `attempts` such rounds without
  /// any chunk the fetch fails.
  public func fetch(_ offer: DataOffer, to path: String, window: Int = 4, patience: Double = 10, attempts: Int = 12) throws {
    guard let post else { throw WorkerError("this worker is not connected: it cannot fetch data") }
    guard offer.bytes > 0, offer.hash.count == 64, offer.hash.allSatisfy({ $0.isHexDigit }) else {
      throw WorkerError("the coordinator offered a malformed data set (\(offer.hash.prefix(70)), \(offer.bytes) bytes)")
    }
    try Folders.create(URL(fileURLWithPath: path).deletingLastPathComponent().path)
    let temporary = path + ".part-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let descriptor = open(temporary, O_RDWR | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else { throw DataError(file: temporary, "cannot be written: \(String(cString: strerror(errno)))") }
    var closed = false
    defer {
      if !closed { close(descriptor) }
      unlink(temporary)
    }
    condition.lock()
    wanted.insert(offer.hash)
    condition.unlock()
    defer {
      condition.lock()
      wanted.remove(offer.hash)
      arrived[offer.hash] = nil
      condition.unlock()
    }
    let offsets = Array(stride(from: 0, to: offer.bytes, by: Framing.chunkBytes))
    var next = 0
    var outstanding: [Int: Date] = [:]
    var quietRounds = 0
    func ask(_ offset: Int) {
      outstanding[offset] = Date()
      post(.dataRequest(DataRequest(hash: offer.hash, offset: offset, length: min(Framing.chunkBytes, offer.bytes - offset))))
    }
    while next < offsets.count || !outstanding.isEmpty {
      while outstanding.count < window && next < offsets.count {
        ask(offsets[next])
        next += 1
      }
      condition.lock()
      var received = arrived[offer.hash] ?? [:]
      if received.isEmpty {
        _ = condition.wait(until: Date().addingTimeInterval(min(patience, 1)))
        received = arrived[offer.hash] ?? [:]
      }
      arrived[offer.hash] = [:]
      condition.unlock()
      for (offset, chunk) in received where outstanding[offset] != nil {
        if let refusal = chunk.refusal { throw WorkerError("the coordinator refused to send the data set: \(refusal)") }
        guard chunk.total == offer.bytes, chunk.bytes.count == min(Framing.chunkBytes, offer.bytes - offset) else {
          throw WorkerError("the coordinator sent \(chunk.bytes.count) bytes at \(offset) of a \(chunk.total)-byte data set; expected a chunk of the offered \(offer.bytes)")
        }
        var written = 0
        while written < chunk.bytes.count {
          let result = chunk.bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress! + written, chunk.bytes.count - written, off_t(offset + written)) }
          guard result > 0 else { throw DataError(file: temporary, "cannot be written: \(String(cString: strerror(errno)))") }
          written += result
        }
        outstanding[offset] = nil
        quietRounds = 0
      }
      // Chunks asked for too long ago are asked for again.
      let now = Date()
      let late = outstanding.filter { now.timeIntervalSince($0.value) >= patience }.map(\.key)
      if !late.isEmpty {
        quietRounds += 1
        guard quietRounds <= attempts else {
          throw WorkerError("the coordinator sent no data for \(Int(patience) * attempts) s (\(outstanding.count) chunks outstanding)")
        }
        for offset in late.sorted() { ask(offset) }
      }
    }
    guard fsync(descriptor) == 0 else { throw DataError(file: temporary, "cannot be written to disk: \(String(cString: strerror(errno)))") }
    close(descriptor)
    closed = true
    guard SHA256.hex(ofFile: temporary) == offer.hash else {
      throw WorkerError("the data set received does not hash to the offered \(offer.hash.prefix(12))…: it is discarded")
    }
    guard rename(temporary, path) == 0 else { throw DataError(file: path, "cannot be written: \(String(cString: strerror(errno)))") }
  }
}
