import Cluster
import Foundation
import QuorumTestSupport
import XCTest

final class SchedulerTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func testLeasesExpireWithoutHeartbeatsAndLateResultsAreDiscarded() throws {
    let scheduler = Scheduler(tasks: ["a", "b"])  // lease 4 s
    let first = try XCTUnwrap(try scheduler.lease(to: "w1", now: 0))
    XCTAssertEqual(first.task, "a")
    XCTAssertEqual(first.attempt, 1)
    XCTAssertEqual(try scheduler.lease(to: "w2", now: 0)?.task, "b")
    XCTAssertNil(try scheduler.lease(to: "w3", now: 0), "nothing left to lease")
    // w1 keeps heartbeating, w2 falls silent (SIGSTOP).
    for second in 1...6 { scheduler.renew(worker: "w1", now: Double(second)) }
    let expired = try scheduler.expire(now: 6)
    XCTAssertEqual(expired.map(\.task), ["b"])
    let retry = try XCTUnwrap(try scheduler.lease(to: "w3", now: 6))
    XCTAssertEqual(retry.task, "b")
    XCTAssertEqual(retry.attempt, 2)
    // w2 wakes up (SIGCONT) and sends its late result of attempt 1: discarded.
    XCTAssertFalse(scheduler.accepts(task: "b", attempt: 1, worker: "w2"))
    XCTAssertTrue(scheduler.accepts(task: "b", attempt: 2, worker: "w3"))
    try scheduler.stored(task: "b", attempt: 2)
    XCTAssertFalse(scheduler.accepts(task: "b", attempt: 2, worker: "w3"), "a duplicate of a stored result is not stored again")
    XCTAssertTrue(scheduler.accepts(task: "a", attempt: 1, worker: "w1"))
    try scheduler.stored(task: "a", attempt: 1)
    XCTAssertTrue(scheduler.isFinished)
  }

  func testATaskThatAlwaysCrashesStopsAtTheRetryLimitAndTheRestFinish() throws {
    let scheduler = Scheduler(tasks: ["poison", "fine"])
    for attempt in 1...3 {
      let lease = try XCTUnwrap(try scheduler.lease(to: "w", now: Double(attempt)))
      XCTAssertEqual(lease.task, "poison")
      XCTAssertEqual(lease.attempt, attempt)
      try scheduler.crashed(task: "poison", attempt: attempt, worker: "w", reason: "segfault")
    }
    XCTAssertEqual(scheduler.states["poison"], .failed(attemptsUsed: 3, reason: "segfault"))
    let next = try XCTUnwrap(try scheduler.lease(to: "w", now: 10))
    XCTAssertEqual(next.task, "fine")
    try scheduler.stored(task: "fine", attempt: next.attempt)
    XCTAssertTrue(scheduler.isFinished)
    XCTAssertNil(try scheduler.lease(to: "w", now: 11))
  }

  /// A worker's hello lists the leases it still holds: a restarted worker (same name,
  /// nothing running) gives its lease back at once; one still training keeps it.
  func testAHelloReleasesTheLeasesAWorkerNoLongerHolds() throws {
    let scheduler = Scheduler(tasks: ["a", "b"])
    let a = try XCTUnwrap(try scheduler.lease(to: "w1", now: 0))
    _ = try scheduler.lease(to: "w2", now: 0)
    XCTAssertTrue(try scheduler.release(worker: "w2", keeping: ["b": 1]).isEmpty, "w2 still trains b")
    let released = try scheduler.release(worker: "w1", keeping: [:])
    XCTAssertEqual(released.map(\.task), ["a"])
    XCTAssertEqual(scheduler.states["a"], .pending(attemptsUsed: a.attempt))
    XCTAssertEqual(try scheduler.lease(to: "w1", now: 1)?.attempt, 2)
  }

  /// A task that failed in an earlier run is tried again, with fresh attempts numbered on,
  /// when the experiment runs again.
  func testAFailedTaskGetsFreshAttemptsWhenTheExperimentRunsAgain() throws {
    let path = folder + "/retry/journal.jsonl"
    do {
      let scheduler = Scheduler(tasks: ["poison"], journal: try Journal(path: path))
      for attempt in 1...3 {
        _ = try scheduler.lease(to: "w", now: 0)
        try scheduler.crashed(task: "poison", attempt: attempt, worker: "w", reason: "out of memory")
      }
      XCTAssertTrue(scheduler.isFinished)
    }
    let again = Scheduler(tasks: ["poison"], journal: try Journal(path: path), replaying: try Journal.read(path))
    XCTAssertFalse(again.isFinished)
    for attempt in 4...6 {
      XCTAssertEqual(try again.lease(to: "w", now: 0)?.attempt, attempt)
      try again.crashed(task: "poison", attempt: attempt, worker: "w", reason: "out of memory")
    }
    XCTAssertEqual(again.states["poison"], .failed(attemptsUsed: 6, reason: "out of memory"))
  }

  /// Later tasks (students) wait until every other task is stored or failed.
  func testLaterTasksWaitForEveryOtherTask() throws {
    let scheduler = Scheduler(tasks: ["a", "b"], later: [["student"]])
    let a = try XCTUnwrap(try scheduler.lease(to: "w1", now: 0))
    let b = try XCTUnwrap(try scheduler.lease(to: "w2", now: 0))
    XCTAssertNil(try scheduler.lease(to: "w3", now: 0), "the student waits for a and b")
    try scheduler.stored(task: a.task, attempt: a.attempt)
    XCTAssertNil(try scheduler.lease(to: "w3", now: 0))
    for attempt in 1...3 {
      if attempt > 1 { _ = try scheduler.lease(to: "w2", now: 0) }
      try scheduler.crashed(task: b.task, attempt: attempt, worker: "w2", reason: "crash")
    }
    XCTAssertTrue(scheduler.phasesFinished(before: 1), "b failed: the first phase is over")
    XCTAssertEqual(try scheduler.lease(to: "w3", now: 0)?.task, "student")
    XCTAssertFalse(scheduler.isFinished)
  }

  /// A growing first phase (a search's trials, proposed as workers free up): it is not
  /// finished while it grows, however many of its tasks are done, so the phase after it
  /// waits; each proposal is journalled with what it was made from, and a restarted
  /// scheduler that is given the task again gets its state back.
  func testAGrowingPhaseHoldsTheNextUntilItStopsGrowingAndItsProposalsAreJournalled() throws {
    let path = folder + "/run/journal.jsonl"
    do {
      let scheduler = Scheduler(tasks: [], later: [["member"]], journal: try Journal(path: path))
      scheduler.growingPhases = [0]
      XCTAssertNil(try scheduler.lease(to: "w", now: 0), "nothing proposed yet, and the member waits")
      XCTAssertFalse(scheduler.hasLeasableTask)
      try scheduler.propose(task: "trial-0", phase: 0, proposal: "{\"lr\":0.1}")
      XCTAssertTrue(scheduler.hasLeasableTask)
      let trial = try XCTUnwrap(try scheduler.lease(to: "w", now: 0))
      XCTAssertEqual(trial.task, "trial-0")
      try scheduler.stored(task: trial.task, attempt: trial.attempt)
      XCTAssertFalse(scheduler.isFinished)
      XCTAssertFalse(scheduler.phasesFinished(before: 1), "the trials' phase still grows")
      XCTAssertNil(try scheduler.lease(to: "w", now: 0), "the member waits for the phase to stop growing")
      try scheduler.propose(task: "trial-1", phase: 0, proposal: "{\"lr\":0.2}")
      _ = try scheduler.lease(to: "w", now: 1)  // trial-1 is in flight when the coordinator dies
      XCTAssertEqual(scheduler.unfinishedTasks(in: 0), ["trial-1"])
    }
    let events = try Journal.read(path)
    XCTAssertEqual(events.map(\.kind), [.proposed, .leased, .stored, .proposed, .leased])
    XCTAssertEqual(events.first?.proposal, "{\"lr\":0.1}")
    // Restarted with trial-0 as a first task, and trial-1 proposed again by its source.
    let resumed = Scheduler(tasks: ["trial-0"], later: [["member"]], journal: try Journal(path: path), replaying: events)
    resumed.growingPhases = [0]
    XCTAssertEqual(resumed.states["trial-0"], .stored(attempt: 1))
    try resumed.propose(task: "trial-1", phase: 0, proposal: "{\"lr\":0.2}")
    XCTAssertEqual(resumed.states["trial-1"], .pending(attemptsUsed: 1), "its open lease counted, as a first task's would")
    XCTAssertEqual(try Journal.read(path).filter { $0.kind == .proposed }.count, 3, "a proposal the journal has is written again only if made again")
    let retry = try XCTUnwrap(try resumed.lease(to: "w", now: 0))
    XCTAssertEqual(retry.attempt, 2)
    try resumed.stored(task: retry.task, attempt: retry.attempt)
    resumed.growingPhases = []
    XCTAssertTrue(resumed.phasesFinished(before: 1))
    XCTAssertEqual(try resumed.lease(to: "w", now: 0)?.task, "member")
  }

  func testALostWorkersLeasesGoBackAtOnce() throws {
    let scheduler = Scheduler(tasks: ["a", "b", "c"])
    _ = try scheduler.lease(to: "w1", now: 0)
    _ = try scheduler.lease(to: "w2", now: 0)
    try scheduler.workerLost("w1")
    XCTAssertEqual(scheduler.states["a"], .pending(attemptsUsed: 1))
    XCTAssertEqual(try scheduler.lease(to: "w2", now: 0.5)?.task, "a")
  }

  /// kill -9 of the coordinator: a new one replays the journal and goes on without
  /// re-running stored tasks; a lease that was open counts as a used attempt.
  func testARestartedCoordinatorResumesFromItsJournal() throws {
    let path = folder + "/run/journal.jsonl"
    do {
      let scheduler = Scheduler(tasks: ["a", "b", "c"], journal: try Journal(path: path))
      _ = try scheduler.lease(to: "w", now: 0)
      try scheduler.stored(task: "a", attempt: 1)
      _ = try scheduler.lease(to: "w", now: 1)  // b is in flight when the coordinator dies
    }
    // A write cut in half by the crash ends the file.
    let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
    handle.seekToEndOfFile()
    handle.write(Data("{\"kind\":\"sto".utf8))
    handle.closeFile()
    let events = try Journal.read(path)
    XCTAssertEqual(events.map(\.kind), [.leased, .stored, .leased])
    let resumed = Scheduler(tasks: ["a", "b", "c"], journal: try Journal(path: path), replaying: events)
    XCTAssertEqual(resumed.states["a"], .stored(attempt: 1))
    XCTAssertEqual(resumed.states["b"], .pending(attemptsUsed: 1))
    let next = try XCTUnwrap(try resumed.lease(to: "w", now: 0))
    XCTAssertEqual(next.task, "b")
    XCTAssertEqual(next.attempt, 2, "the open lease of the dead coordinator counted")
    // A damaged line in the middle is not silently skipped.
    try writeText(folder + "/bad.jsonl", "{\"kind\":\"leased\",\"task\":\"a\",\"attempt\":1}\nnot json\n{\"kind\":\"stored\",\"task\":\"a\",\"attempt\":1}\n")
    XCTAssertThrowsError(try Journal.read(folder + "/bad.jsonl")) { XCTAssert("\($0)".contains("line 2"), "\($0)") }
  }

  func writeText(_ path: String, _ text: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
  }
}
