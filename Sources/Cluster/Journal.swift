import Files
import Foundation
import Wire

/// What the coordinator remembers: one JSON object per line, appended and fsync'd before
/// the coordinator acts on it, so that a coordinator killed at any moment and restarted
/// knows which tasks are stored and how many attempts each has used.
public struct JournalEvent: Codable, Equatable, Sendable {
  /// `proposed`: a task made while the run goes on (a search's trial), with what it was
  /// made from, so that a restarted coordinator has the same task, not a new proposal.
  /// `reported`: a progress report the coordinator decides on (a search trial's score at a
  /// rung of successive halving), so that a restarted one decides the same.
  public enum Kind: String, Codable, Sendable { case proposed, reported, leased, stored, expired, crashed, failed }
  public var kind: Kind
  public var task: String
  public var attempt: Int
  public var worker: String?
  public var reason: String?
  /// A proposed task's making, as its proposer wrote it (opaque here).
  public var proposal: String?
  /// A reported event's progress report.
  public var progress: ProgressReport?

  public init(
    _ kind: Kind, task: String, attempt: Int, worker: String? = nil, reason: String? = nil, proposal: String? = nil,
    progress: ProgressReport? = nil
  ) {
    self.kind = kind
    self.task = task
    self.attempt = attempt
    self.worker = worker
    self.reason = reason
    self.proposal = proposal
    self.progress = progress
  }
}

public final class Journal {
  public let path: String
  private let descriptor: Int32
  /// Bytes of a torn last record (a write cut by a crash or a full disk) that opening the
  /// journal cut off, so that no append lands after a fragment; 0 for a clean journal.
  public let truncatedBytes: Int

  /// Opens (creating) the journal for appending, cutting off a torn last record: it never
  /// took effect, since the coordinator acts on an event only after its fsync.
  public init(path: String) throws {
    self.path = path
    try Folders.create(URL(fileURLWithPath: path).deletingLastPathComponent().path)
    descriptor = open(path, O_RDWR | O_CREAT | O_APPEND, 0o644)
    guard descriptor >= 0 else { throw JournalError(path: path, "cannot be opened: \(String(cString: strerror(errno)))") }
    let data = FileManager.default.contents(atPath: path) ?? Data()
    let kept = data.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
    truncatedBytes = data.count - kept
    if truncatedBytes > 0 {
      guard ftruncate(descriptor, off_t(kept)) == 0, fsync(descriptor) == 0 else {
        let problem = String(cString: strerror(errno))
        close(descriptor)
        throw JournalError(path: path, "its torn last record cannot be cut off: \(problem)")
      }
    }
  }

  deinit { close(descriptor) }

  /// Appends one event and waits until it is on disk. A write that fails part way (a full
  /// disk) is cut off again, so the journal stays a sequence of whole records.
  public func append(_ event: JournalEvent) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let line = [UInt8](try encoder.encode(event)) + [0x0A]
    let end = lseek(descriptor, 0, SEEK_END)
    let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    // errno is read at once: it means something only when a call has just failed.
    let problem = written < 0 ? String(cString: strerror(errno))
      : written < line.count ? "only \(written) of \(line.count) bytes written (is the disk full?)" : nil
    if let problem {
      if end >= 0 { _ = ftruncate(descriptor, end) }
      throw JournalError(path: path, "cannot be written: \(problem)")
    }
    guard fsync(descriptor) == 0 else {
      throw JournalError(path: path, "cannot be written to disk (fsync): \(String(cString: strerror(errno)))")
    }
  }

  /// The events of a journal. A last line cut by a crash mid-write is ignored (its event
  /// never took effect: the coordinator acts only after the fsync); a bad line before the
  /// end is an error naming the line.
  public static func read(_ path: String) throws -> [JournalEvent] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
    var events: [JournalEvent] = []
    for (index, line) in lines.enumerated() where !line.isEmpty {
      do { events.append(try JSONDecoder().decode(JournalEvent.self, from: Data(line))) } catch {
        let isLast = index == lines.count - 1 || (index == lines.count - 2 && lines.last?.isEmpty == true)
        if isLast && data.last != 0x0A { break }
        throw JournalError(path: path, "line \(index + 1) is not a journal event")
      }
    }
    return events
  }
}

public struct JournalError: Error, CustomStringConvertible {
  public let path: String
  public let problem: String
  init(path: String, _ problem: String) {
    self.path = path
    self.problem = problem
  }
  public var description: String { "\(path): \(problem)" }
}
