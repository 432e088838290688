import Wire

/// The coordinator's decisions, apart from its sockets: which task a worker gets, when a
/// lease expires, whether a result is stored. Time is passed in, so it is tested without
/// sleeping; every decision is journaled first, so a restarted coordinator resumes.
///
/// Guarantees: a task is stored at most once (the first result of its current lease);
/// a result of an expired or superseded attempt is discarded; a task that used up its
/// attempts is marked failed and the rest go on.
public final class Scheduler {
  public enum TaskState: Equatable, Sendable {
    case pending(attemptsUsed: Int)
    case leased(worker: String, attempt: Int, expires: Double)
    case stored(attempt: Int)
    case failed(attemptsUsed: Int, reason: String)
  }

  /// Tasks in the order they are handed out.
  public private(set) var order: [String]
  /// Each task's phase: 0 for the first tasks, then 1, 2, … for the phases given as
  /// `later`. A phase's tasks wait until every task of the earlier phases is stored or
  /// failed (Noisy Student rounds, a student distilled from the ensemble).
  public private(set) var phase: [String: Int]
  public let phaseCount: Int
  /// Phases whose tasks are not handed out yet, whatever the others' state (their
  /// payloads are being prepared).
  public var heldPhases: Set<Int> = []
  /// Phases that may still gain tasks (`propose`: a search's trials, made as workers free
  /// up): unfinished, however many of their tasks are done, until taken out of the set.
  public var growingPhases: Set<Int> = []
  /// Journal events of tasks not (yet) in the schedule, by task: a proposed task that a
  /// restarted coordinator meets again gets its state back when it is proposed.
  private var unplacedEvents: [String: [JournalEvent]] = [:]
  public private(set) var states: [String: TaskState]
  public let timing: Timing
  private let journal: Journal?
  /// Attempts a task had used before this coordinator started (a task that failed in an
  /// earlier run); the retry limit counts from there.
  private var attemptBase: [String: Int]

  /// A fresh schedule, or one resumed from the journal's events.
  public init(
    tasks: [String], later: [[String]] = [], timing: Timing = Timing(), journal: Journal? = nil, replaying events: [JournalEvent] = []
  ) {
    var phase = Dictionary(uniqueKeysWithValues: tasks.map { ($0, 0) })
    for (index, tasks) in later.enumerated() { for task in tasks { phase[task] = index + 1 } }
    self.phase = phase
    phaseCount = 1 + later.count
    let tasks = tasks + later.flatMap { $0 }
    order = tasks
    self.timing = timing
    self.journal = journal
    states = Dictionary(uniqueKeysWithValues: tasks.map { ($0, TaskState.pending(attemptsUsed: 0)) })
    attemptBase = [:]
    for event in events {
      if states[event.task] == nil {
        if event.kind != .proposed && event.kind != .reported { unplacedEvents[event.task, default: []].append(event) }
        continue
      }
      replay(event)
    }
  }

  /// Replay: a lease that was open when the coordinator died counts as a used attempt and
  /// its task is pending again; stored tasks stay so; a failed task gets a fresh set of
  /// attempts (numbered on from its last, so its old results stay recognisable): the user
  /// runs the experiment again after fixing what made it fail.
  private func replay(_ event: JournalEvent) {
    guard let state = states[event.task] else { return }
    switch event.kind {
    case .leased:
      if case .pending = state { states[event.task] = .pending(attemptsUsed: event.attempt) }
    case .stored: states[event.task] = .stored(attempt: event.attempt)
    case .failed:
      states[event.task] = .pending(attemptsUsed: event.attempt)
      attemptBase[event.task] = event.attempt
    case .expired, .crashed, .proposed, .reported: break
    }
  }

  /// Journals a progress report before the coordinator decides on it (`Coordinator.journalsProgress`).
  public func record(report: ProgressReport) throws {
    try journal?.append(JournalEvent(.reported, task: report.task, attempt: report.attempt, progress: report))
  }

  /// Adds a task to growing phase `phase`, journalled first with what it was made from
  /// (`proposal`). A task the journal already knows (proposed before a restart) keeps
  /// its state from there.
  public func propose(task: String, phase: Int, proposal: String) throws {
    precondition(growingPhases.contains(phase), "phase \(phase) takes no new tasks")
    guard states[task] == nil else { return }
    try journal?.append(JournalEvent(.proposed, task: task, attempt: 0, proposal: proposal))
    order.append(task)
    self.phase[task] = phase
    states[task] = .pending(attemptsUsed: 0)
    for event in unplacedEvents.removeValue(forKey: task) ?? [] { replay(event) }
  }

  public var isFinished: Bool { growingPhases.isEmpty && states.keys.allSatisfy(isDone) }

  /// Whether `task` is stored or failed: nothing more will happen to it in this run.
  private func isDone(_ task: String) -> Bool {
    switch states[task] {
    case .stored, .failed: return true
    case .pending, .leased, nil: return false
    }
  }

  /// The tasks of phase `phase` neither stored nor failed, in order.
  public func unfinishedTasks(in phase: Int) -> [String] {
    order.filter { self.phase[$0, default: 0] == phase && !isDone($0) }
  }

  /// Whether `lease` would hand out a task now.
  public var hasLeasableTask: Bool { leasable() != nil }

  public func count(where predicate: (TaskState) -> Bool) -> Int { states.values.filter(predicate).count }

  /// Whether every task of the phases before `phase` is stored or failed (and none of
  /// them still grows).
  public func phasesFinished(before phase: Int) -> Bool {
    guard !growingPhases.contains(where: { $0 < phase }) else { return false }
    return order.allSatisfy { self.phase[$0, default: 0] >= phase || isDone($0) }
  }

  /// Whether some task of `phase` is neither stored nor failed.
  public func hasUnfinishedTasks(in phase: Int) -> Bool {
    if growingPhases.contains(phase) { return true }
    return order.contains { self.phase[$0, default: 0] == phase && !isDone($0) }
  }

  /// The tasks of `phase`, in order.
  public func tasks(in phase: Int) -> [String] { order.filter { self.phase[$0, default: 0] == phase } }

  /// Marks a pending task failed without running it (it cannot be prepared).
  public func fail(task: String, reason: String) throws {
    guard case .pending(let used) = states[task] else { return }
    try journal?.append(JournalEvent(.failed, task: task, attempt: used, reason: reason))
    states[task] = .failed(attemptsUsed: used, reason: reason)
  }

  /// The next pending task for `worker`, leased until now + the lease duration.
  public func lease(to worker: String, now: Double) throws -> (task: String, attempt: Int)? {
    guard let (task, used) = leasable() else { return nil }
    let attempt = used + 1
    try journal?.append(JournalEvent(.leased, task: task, attempt: attempt, worker: worker))
    states[task] = .leased(worker: worker, attempt: attempt, expires: now + timing.leaseDuration)
    return (task, attempt)
  }

  /// The first pending task of the open phase (the first whose tasks are not all
  /// finished) that is not held, with the attempts it used.
  private func leasable() -> (task: String, used: Int)? {
    // (One phase, the common case: no second scan of the tasks.)
    let open = phaseCount == 1 ? 0 : (0..<phaseCount).first { hasUnfinishedTasks(in: $0) } ?? 0
    for task in order {
      guard case .pending(let used) = states[task] else { continue }
      if phase[task, default: 0] > open || heldPhases.contains(phase[task, default: 0]) { continue }
      return (task, used)
    }
    return nil
  }

  /// A heartbeat (or progress report) from a worker renews its leases.
  public func renew(worker: String, now: Double) {
    for (task, state) in states {
      if case .leased(worker, let attempt, _) = state {
        states[task] = .leased(worker: worker, attempt: attempt, expires: now + timing.leaseDuration)
      }
    }
  }

  /// Expires the leases whose deadline passed; their tasks go back (or fail at the retry
  /// limit). Returns the expired (task, attempt) pairs.
  @discardableResult
  public func expire(now: Double) throws -> [(task: String, attempt: Int)] {
    var expired: [(String, Int)] = []
    for task in order {
      guard case .leased(let worker, let attempt, let expires) = states[task], expires <= now else { continue }
      try journal?.append(JournalEvent(.expired, task: task, attempt: attempt, worker: worker))
      try giveBack(task, attempt: attempt, reason: "lease expired on \(worker)")
      expired.append((task, attempt))
    }
    return expired
  }

  /// A worker reports that the task crashed: the attempt is used. `permanent`: another
  /// attempt would fail the same way, so the task is marked failed now.
  public func crashed(task: String, attempt: Int, worker: String, reason: String, permanent: Bool = false) throws {
    guard case .leased(worker, attempt, _) = states[task] else { return }
    try journal?.append(JournalEvent(.crashed, task: task, attempt: attempt, worker: worker, reason: reason))
    if permanent { try markFailed(task, attempt: attempt, reason: reason) } else { try giveBack(task, attempt: attempt, reason: reason) }
  }

  /// A worker is gone (disconnect, or its heartbeats stopped): its leases expire now.
  public func workerLost(_ worker: String) throws {
    for task in order {
      if case .leased(worker, let attempt, _) = states[task] {
        try journal?.append(JournalEvent(.expired, task: task, attempt: attempt, worker: worker))
        try giveBack(task, attempt: attempt, reason: "worker \(worker) lost")
      }
    }
  }

  /// A worker says which leases it still holds (its hello): the others it was granted are
  /// lost and go back (an attempt used). Returns the released (task, attempt) pairs.
  @discardableResult
  public func release(worker: String, keeping held: [String: Int]) throws -> [(task: String, attempt: Int)] {
    var released: [(String, Int)] = []
    for task in order {
      guard case .leased(worker, let attempt, _) = states[task], held[task] != attempt else { continue }
      try journal?.append(JournalEvent(.expired, task: task, attempt: attempt, worker: worker, reason: "not held by \(worker) at its hello"))
      try giveBack(task, attempt: attempt, reason: "worker \(worker) restarted or its task crashed")
      released.append((task, attempt))
    }
    return released
  }

  /// Whether a result should be stored: only for the task's current lease with this
  /// attempt. The caller stores it (temp file, fsync, rename) and then calls `stored`.
  public func accepts(task: String, attempt: Int, worker: String) -> Bool {
    if case .leased(worker, attempt, _) = states[task] { return true }
    return false
  }

  /// Records a stored result (after the files are durable).
  public func stored(task: String, attempt: Int) throws {
    try journal?.append(JournalEvent(.stored, task: task, attempt: attempt))
    states[task] = .stored(attempt: attempt)
  }

  private func giveBack(_ task: String, attempt: Int, reason: String) throws {
    if attempt - attemptBase[task, default: 0] >= timing.retryLimit {
      try markFailed(task, attempt: attempt, reason: reason)
    } else {
      states[task] = .pending(attemptsUsed: attempt)
    }
  }

  private func markFailed(_ task: String, attempt: Int, reason: String) throws {
    try journal?.append(JournalEvent(.failed, task: task, attempt: attempt, reason: reason))
    states[task] = .failed(attemptsUsed: attempt, reason: reason)
  }
}
