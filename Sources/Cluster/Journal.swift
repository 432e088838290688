import Foundation

/// What the coordinator remembers: one JSON object per line, appended and fsync'd before
/// the coordinator acts on it, so that a coordinator killed at any moment and restarted
/// knows which tasks are stored and how many attempts each has used.
public struct JournalEvent: Codable, Equatable, Sendable {
  public enum Kind: String, Codable, Sendable { case leased, stored, expired, crashed, failed }
  public var kind: Kind
  public var task: String
  public var attempt: Int
  public var worker: String?
  public var reason: String?

  public init(_ kind: Kind, task: String, attempt: Int, worker: String? = nil, reason: String? = nil) {
    self.kind = kind
    self.task = task
    self.attempt = attempt
    self.worker = worker
    self.reason = reason
  }
}

public final class Journal {
  public let path: String
  private let descriptor: Int32

  /// Opens (creating) the journal for appending.
  public init(path: String) throws {
    self.path = path
    try FileManager.default.createDirectory(
      at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
    descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard descriptor >= 0 else { throw JournalError(path: path, "cannot be opened: \(String(cString: strerror(errno)))") }
  }

  deinit { close(descriptor) }

  /// Appends one event and waits until it is on disk.
  public func append(_ event: JournalEvent) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let line = [UInt8](try encoder.encode(event)) + [0x0A]
    let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    guard written == line.count, fsync(descriptor) == 0 else {
      throw JournalError(path: path, "cannot be written: \(String(cString: strerror(errno)))")
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
