import Cluster
import Data
import Experiment
import Files
import Foundation
import Wire

/// A worker's cache of served data sets, one file per hash (`DataBundle`): a data set is
/// fetched from the coordinator the first time a lease names it, then read from here by
/// every later task and run, checked against its hash as it is read; a damaged or torn
/// one is fetched again.
public final class DataCache: @unchecked Sendable {
  public let folder: String
  public let transfers: DataTransfers
  public let log: (String) -> Void
  /// One fetch at a time: two tasks of one worker needing the same data set fetch it once.
  private let lock = NSLock()

  public init(folder: String, transfers: DataTransfers, log: @escaping (String) -> Void) {
    self.folder = folder
    self.transfers = transfers
    self.log = log
  }

  /// $QUORUM_CACHE, else $XDG_CACHE_HOME/quorum, else ~/.cache/quorum; data sets go in its
  /// data/ folder.
  public static func defaultFolder() -> String {
    let environment = ProcessInfo.processInfo.environment
    if let folder = environment["QUORUM_CACHE"], !folder.isEmpty { return folder }
    if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/quorum" }
    return NSHomeDirectory() + "/.cache/quorum"
  }

  public func path(_ offer: DataOffer) -> String { folder + "/data/" + offer.hash + "." + DataBundle.fileExtension }

  /// The data set `offer` names: from the cache, or fetched into it first.
  public func load(_ offer: DataOffer) throws -> ExperimentData {
    let path = path(offer)
    lock.lock()
    defer { lock.unlock() }
    if FileManager.default.fileExists(atPath: path) {
      do { return try DataBundle.read(path, hash: offer.hash) } catch {
        log("the cached data set \(path) does not hash to \(offer.hash.prefix(12))… or does not decode (\(error)): fetching it again")
        unlink(path)
      }
    }
    let started = Date()
    log(String(format: "fetching the data set %@… (%.1f MB) from the coordinator", String(offer.hash.prefix(12)), Double(offer.bytes) / 1e6))
    // The fetch checks the hash before the file takes its name.
    try transfers.fetch(offer, to: path)
    let seconds = Date().timeIntervalSince(started)
    log(String(
      format: "fetched the data set %@… in %.2f s (%.1f MB/s) into %@", String(offer.hash.prefix(12)), seconds,
      Double(offer.bytes) / 1e6 / max(seconds, 1e-6), path))
    return try DataBundle.decode(try FileBytes.read(path), file: path)
  }
}
