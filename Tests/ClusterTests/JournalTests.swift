import Cluster
import Foundation
import QuorumTestSupport
import XCTest

/// The journal stays a sequence of whole records through crashes and full disks: a torn
/// last record is cut off when the journal opens, a failed write is cut off at once, and
/// the coordinator can always start again on it.
final class JournalTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  let leased = JournalEvent(.leased, task: "a", attempt: 1, worker: "w")
  let stored = JournalEvent(.stored, task: "a", attempt: 1)

  /// A crash mid-write left a fragment: opening cuts it off, so the next append starts a
  /// line of its own, and every later start replays the journal (before, the append landed
  /// after the fragment and the start after that refused the run for good).
  func testATornLastRecordIsCutOffAndLaterStartsReplayIt() throws {
    let path = folder + "/journal.jsonl"
    let fragment = "{\"attempt\":1,\"kind\":\"sto"
    try Data(("{\"attempt\":1,\"kind\":\"leased\",\"task\":\"a\",\"worker\":\"w\"}\n" + fragment).utf8).write(to: URL(fileURLWithPath: path))
    XCTAssertEqual(try Journal.read(path), [leased], "the torn record is not counted")
    let journal = try Journal(path: path)
    XCTAssertEqual(journal.truncatedBytes, fragment.utf8.count)
    try journal.append(stored)
    for _ in 0..<2 {
      XCTAssertEqual(try Journal(path: path).truncatedBytes, 0)
      XCTAssertEqual(try Journal.read(path), [leased, stored])
    }
  }

  /// A write the disk cuts short (here the file-size limit, as a full disk would) fails
  /// with what happened, and leaves no fragment behind.
  func testAShortWriteIsReportedAndLeavesNoFragment() throws {
    let path = folder + "/journal.jsonl"
    let journal = try Journal(path: path)
    try journal.append(leased)
    let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    // Past the limit a write stops short (and the next one fails with EFBIG), instead of
    // the signal that would end the test process.
    let previousHandler = signal(SIGXFSZ, SIG_IGN)
    var limit = rlimit()
    getrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit)
    let saved = limit
    limit.rlim_cur = rlim_t(size + 10)
    XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit), 0)
    XCTAssertThrowsError(try journal.append(stored)) { error in
      XCTAssert("\(error)".contains(path) && "\(error)".contains("only 10 of"), "\(error)")
    }
    var restored = saved
    XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &restored), 0)
    signal(SIGXFSZ, previousHandler)
    XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, size, "the partial record was cut off")
    try journal.append(stored)
    XCTAssertEqual(try Journal.read(path), [leased, stored])
  }
}
