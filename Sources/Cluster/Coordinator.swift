import Foundation
import Wire

/// The coordinator's loop: a ROUTER socket, the scheduler, the journal and the result
/// store. One thread owns the socket; every decision goes through `Scheduler`.
public final class Coordinator {
  public struct WorkerRecord {
    public var lastSeen: Double
    /// Tasks it is busy with, and how many it trains at once (its hello's slots). Busy is
    /// what the worker runs, not what the scheduler still counts as its lease: a task whose
    /// lease expired may still be training there, and its slot frees only when its result
    /// (late or not) or failure arrives, or a hello says what it runs.
    public var running = 0
    public var slots = 1
    /// Its latest progress report (of any of its tasks).
    public var progress: ProgressReport?
    public var busy: Bool { running > 0 }
    /// Whether it has said hello on this coordinator: only then is it handed work. A
    /// worker heard first by a heartbeat (this coordinator restarted under it) may be busy
    /// with a task of the earlier run; its hello says so.
    public var announced = false
    /// Whether it reads the data paths itself (its hello says so): its leases offer no
    /// served data.
    public var sharedData = false

    init(lastSeen: Double) { self.lastSeen = lastSeen }
  }

  public let scheduler: Scheduler
  public private(set) var workers: [String: WorkerRecord] = [:]
  /// Each worker's current connection: the routing identity its messages come from
  /// (`PeerIdentity`), and where messages to it go.
  private var connections: [String: String] = [:]
  /// Identities whose worker name a newer process took (by its hello): a message from one
  /// means two processes run under one name, and it is told to stop.
  private var superseded = SupersededIdentities()
  /// Events since the start: messages, results stored and discarded, leases expired.
  public private(set) var counters = CoordinatorCounters()
  let startTime: Double
  let socket: any RouterTransport
  var settings: [String: String]
  let store: ResultStore
  let clock: () -> Double
  let log: (String) -> Void
  private var lastHeartbeat = 0.0
  /// Called on every turn of the loop (the live progress table redraws from it).
  public var onTick: (() -> Void)?
  /// Called with every progress report of a current lease (the run's learning curves).
  public var onProgress: ((ProgressReport) -> Void)?
  /// Called after `onProgress`: a reason to end the task after this epoch (a search's
  /// successive halving), sent to its worker as a stop; nil to let it go on.
  public var stopReason: ((ProgressReport) -> String?)?
  /// Which reports are journalled (fsync'd) before `stopReason` judges them: those a
  /// decision rests on, so that a restarted coordinator replays the same decisions.
  public var journalsProgress: ((ProgressReport) -> Bool)?
  /// Called once per later phase, when every task of the earlier phases is finished: the
  /// phase's tasks' settings and tensors (pseudo-labels, a student's teacher targets, made
  /// from the finished tasks' results). A task it leaves out, or all of the phase's when it
  /// throws, is marked failed.
  public var preparePhase: ((Int) throws -> [String: (settings: String, tensors: [WireTensor])])? {
    didSet { scheduler.heldPhases = preparePhase == nil ? [] : Set(1..<max(scheduler.phaseCount, 1)) }
  }
  /// Grows the first phase while it runs (a search's trials, proposed as workers free up):
  /// asked, with the phase's unfinished tasks, whenever a worker has a free slot and no
  /// task can be leased. Each task it makes is journalled before it is handed out.
  /// While it is set, the first phase is growing (`Scheduler.growingPhases`) until it says
  /// `.exhausted`; a source that throws is logged and ends the growth.
  public var taskSource: ((_ unfinished: [String]) throws -> TaskProposal)? {
    didSet {
      if taskSource == nil { scheduler.growingPhases.remove(0) } else { scheduler.growingPhases.insert(0) }
    }
  }
  /// The data set served to workers that read no paths (`data_access: served`); nil: every
  /// worker reads the experiment's paths.
  public var servedData: ServedData?
  /// The version of the task specifications its leases carry: a worker whose hello says
  /// another is refused (nil: any worker is taken).
  public var taskSpecification: Int?
  /// What each task's result must hold (nil: anything well-formed is stored). Checked
  /// before a result is decoded, and its content before it is stored.
  public var contract: ((String) -> ResultContract?)?
  /// What starting a phase's preparation is logged as.
  public var describePhase: ((Int) -> String)?
  private var startedPhases: Set<Int> = []
  /// A phase being prepared on its own thread (building an ensemble takes seconds to
  /// minutes; the loop keeps answering heartbeats meanwhile), and its outcome.
  private let preparation = PhasePreparation()
  private var payloads: [String: [WireTensor]] = [:]
  private let decoding = ResultDecoding()

  /// `settings` maps each task to the JSON the worker needs to run it.
  public init(
    socket: any RouterTransport, scheduler: Scheduler, settings: [String: String], store: ResultStore,
    clock: @escaping () -> Double = { Date().timeIntervalSince1970 }, log: @escaping (String) -> Void = { _ in }
  ) {
    self.socket = socket
    self.scheduler = scheduler
    self.settings = settings
    self.store = store
    self.clock = clock
    self.log = log
    startTime = clock()
  }

  /// Serves until every task is stored or failed (or `stop` says so), then tells the
  /// workers to leave.
  public func run(stop: () -> Bool = { false }) throws {
    try socket.prepareToServe()
    while !isDone && !stop() { try turn(timeout: scheduler.timing.heartbeatInterval / 4) }
    finish()
  }

  /// Whether every task is stored or failed, and no result is still being decoded.
  public var isDone: Bool { scheduler.isFinished && !decoding.isBusy }

  /// One turn of the loop: the next message (waiting up to `timeout` for one), then what
  /// the clock and the finished decodings and preparations call for.
  public func turn(timeout: Double) throws {
    if let frames = try socket.receive(timeout: timeout), frames.count >= 2 {
      try handle(identity: frames[0], frames: Array(frames.dropFirst()))
    }
    try tick()
    onTick?()
  }

  /// Tells every worker the experiment is finished.
  public func finish() {
    for worker in workers.keys { try? send(.disconnect(reason: "experiment finished"), to: worker) }
  }

  func handle(identity: [UInt8], frames: [[UInt8]]) throws {
    let peer = String(decoding: identity, as: UTF8.self)
    let worker = PeerIdentity.name(of: peer)
    let now = clock()
    counters.messagesReceived += 1
    // A result is judged on its declaration (the lease, what the task returns) before a
    // frame of it is decompressed: a peer can make the coordinator decode only what it
    // would store.
    if let declaration = Framing.resultDeclaration(frames) {
      guard try admit(peer, as: worker, hello: false) else { return }
      heard(from: worker, now: now, hello: false)
      return try receive(declaration, frames: frames, from: worker)
    }
    let message: Message
    do { message = try Framing.decode(frames) } catch {
      counters.messagesRejected += 1
      log("dropped a message from \(worker): \(error)")
      return
    }
    // A worker that reads task specifications of another version is turned away before
    // it is handed one, with the reason in words on both sides.
    if case .hello(let hello) = message, let required = taskSpecification, hello.taskSpecification != required {
      counters.messagesRejected += 1
      let reads = hello.taskSpecification.map { "version \($0)" } ?? "no version (an earlier release)"
      let reason = "this coordinator leases task specifications of version \(required); worker \(worker) (Quorum \(hello.version)) reads \(reads): "
        + "run one Quorum release on the coordinator and its workers"
      log("refused worker \(worker): \(reason)")
      try socket.send([Array(peer.utf8)] + (try Framing.encode(.reject(reason: reason))))
      return
    }
    var isHello = false
    if case .hello = message { isHello = true }
    guard try admit(peer, as: worker, hello: isHello) else { return }
    heard(from: worker, now: now, hello: isHello)
    switch message {
    case .hello(let hello):
      workers[worker]?.announced = true
      log("worker \(worker) joined (\(hello.devices.joined(separator: ", ")), \(hello.threads) threads)")
      // Leases it no longer holds go back now (a restarted worker, a crashed task).
      for (task, attempt) in try scheduler.release(worker: worker, keeping: hello.running) {
        log("\(worker) no longer runs \(task) attempt \(attempt): it goes back")
      }
      workers[worker]?.running = hello.running.count
      workers[worker]?.slots = max(hello.slots ?? 1, 1)
      workers[worker]?.sharedData = hello.sharedData ?? false
      if hello.running.isEmpty { workers[worker]?.progress = nil }
    case .heartbeat:
      scheduler.renew(worker: worker, now: now)
    case .progress(let progress):
      scheduler.renew(worker: worker, now: now)
      workers[worker]?.progress = progress
      if scheduler.accepts(task: progress.task, attempt: progress.attempt, worker: worker) {
        onProgress?(progress)
        if journalsProgress?(progress) == true { try scheduler.record(report: progress) }
        if let reason = stopReason?(progress) {
          log("stopping \(progress.task) attempt \(progress.attempt) on \(worker) after epoch \(progress.epoch): \(reason)")
          try send(.stop(TaskStop(task: progress.task, attempt: progress.attempt, reason: reason)), to: worker)
        }
      }
    case .failure(let failure):
      if scheduler.accepts(task: failure.task, attempt: failure.attempt, worker: worker) {
        log("\(failure.task) attempt \(failure.attempt) failed on \(worker): \(failure.reason)")
        try scheduler.crashed(
          task: failure.task, attempt: failure.attempt, worker: worker, reason: failure.reason, permanent: failure.permanent == true)
      }
      if let running = workers[worker]?.running { workers[worker]?.running = max(running - 1, 0) }
      if workers[worker]?.busy == false { workers[worker]?.progress = nil }
    case .dataRequest(let request):
      guard let servedData else {
        try send(.dataChunk(DataChunk(
          hash: request.hash, offset: request.offset, total: 0, bytes: [],
          refusal: "this coordinator serves no data (data_access: shared): the worker must read the experiment's paths")), to: worker)
        return
      }
      let chunk = servedData.answer(request)
      if let refusal = chunk.refusal { log("refused \(worker)'s data request: \(refusal)") }
      // What goes on the wire: the LZ4 frame, not the data set's bytes.
      let frames = try Framing.encode(.dataChunk(chunk))
      counters.dataBytesServed += frames.reduce(0) { $0 + $1.count }
      try send(frames: frames, to: worker)
    case .disconnect(let reason):
      log("worker \(worker) left: \(reason)")
      try scheduler.workerLost(worker)
      forget(worker)
    case .result, .task, .acknowledgement, .reject, .stop, .dataChunk:
      // (A result is received through its declaration above.)
      counters.messagesRejected += 1
    }
  }

  /// Whether a message of `peer` is heard as worker `worker`'s. One name, one process: a
  /// hello from a new process under a connected name takes the name over (a restarted
  /// worker, whose earlier process is gone); the earlier process, if it speaks again, is
  /// told to stop, and so is a new process under a connected name that has not said
  /// hello. Either way both sides log why, instead of retrying unheard.
  private func admit(_ peer: String, as worker: String, hello: Bool) throws -> Bool {
    if let taken = superseded[peer] {
      return try refuseDuplicate(peer, taken, "a newer worker process connected under the name \"\(taken)\" and took it over")
    }
    guard let current = connections[worker], current != peer else {
      connections[worker] = peer
      return true
    }
    guard hello else {
      return try refuseDuplicate(peer, worker, "a worker named \"\(worker)\" is already connected")
    }
    superseded.insert(current, name: worker)
    connections[worker] = peer
    log("worker \(worker) connected from a new process: it replaces the earlier one (which, if it still runs, will be told to stop)")
    return true
  }

  private func refuseDuplicate(_ peer: String, _ worker: String, _ reason: String) throws -> Bool {
    counters.messagesRejected += 1
    log("two worker processes use the name \"\(worker)\": \(reason); the other one is refused. Give each worker its own --name")
    try socket.send([Array(peer.utf8)] + (try Framing.encode(.reject(reason: "\(reason): give each worker its own --name"))))
    return false
  }

  /// An unknown peer is registered as it speaks: after a coordinator restart, workers'
  /// heartbeats (and late results, judged by their attempt) arrive before any hello. It is
  /// handed work only once it says hello (`WorkerRecord.announced`).
  private func heard(from worker: String, now: Double, hello: Bool) {
    if workers[worker] == nil && !hello { log("worker \(worker) is back (after a restart or a lost connection)") }
    workers[worker, default: WorkerRecord(lastSeen: now)].lastSeen = now
  }

  private func forget(_ worker: String) {
    workers[worker] = nil
    connections[worker] = nil
  }

  /// A result: discarded undecoded when its lease is not current, refused when its
  /// declaration is not what its task returns, else decoded and its content checked off
  /// this loop (`ResultDecoding`: heartbeats and leases go on meanwhile) and then stored
  /// or refused by `finish`.
  private func receive(_ declaration: ResultDeclaration, frames: [[UInt8]], from worker: String) throws {
    let (task, attempt) = (declaration.task, declaration.attempt)
    guard scheduler.accepts(task: task, attempt: attempt, worker: worker) else { return try discard(task, attempt, from: worker) }
    let expected = contract?(task)
    if let problem = expected?.problem(with: declaration) { return try refuse(task, attempt, from: worker, problem) }
    decoding.start(task: task, attempt: attempt, worker: worker) {
      guard case .result(let decoded) = try Framing.decode(frames) else { throw WireError("not a result") }
      try expected?.checkContent?(decoded)
      return decoded
    }
  }

  /// Results decoded since the last turn: stored if their lease is still current.
  private func finishDecodedResults() throws {
    for (task, attempt, worker, outcome) in decoding.take() {
      guard scheduler.accepts(task: task, attempt: attempt, worker: worker) else { try discard(task, attempt, from: worker); continue }
      switch outcome {
      case .failure(let error): try refuse(task, attempt, from: worker, "\(error)")
      case .success(let result):
        try store.store(result)
        try scheduler.stored(task: task, attempt: attempt)
        settled(worker)
        counters.resultsStored += 1
        log("stored \(task) (attempt \(attempt)) from \(worker)")
        try send(.acknowledgement(Acknowledgement(task: task, attempt: attempt, stored: true)), to: worker)
      }
    }
  }

  /// A worker's result is stored, discarded or refused: its slot frees (only then, so
  /// that a worker never holds more leases than slots before its results are settled).
  private func settled(_ worker: String) {
    if let running = workers[worker]?.running { workers[worker]?.running = max(running - 1, 0) }
    if workers[worker]?.busy == false { workers[worker]?.progress = nil }
  }

  private func discard(_ task: String, _ attempt: Int, from worker: String) throws {
    settled(worker)
    counters.resultsDiscarded += 1
    log("discarded a late or duplicate result of \(task.prefix(120)) attempt \(attempt) from \(worker)")
    try send(.acknowledgement(Acknowledgement(task: task, attempt: attempt, stored: false)), to: worker)
  }

  /// Not what the task returns: the attempt counts as failed, the peer is named and told.
  private func refuse(_ task: String, _ attempt: Int, from worker: String, _ problem: String) throws {
    settled(worker)
    counters.resultsRefused += 1
    log("refused the result of \(task) attempt \(attempt) from \(worker): \(problem) (the attempt counts as failed)")
    try scheduler.crashed(task: task, attempt: attempt, worker: worker, reason: "its result was refused: \(problem)")
    try send(.acknowledgement(Acknowledgement(task: task, attempt: attempt, stored: false, refusal: problem)), to: worker)
  }

  /// Expiry, dead workers, heartbeats and handing out work.
  func tick() throws {
    try finishDecodedResults()
    let now = clock()
    for (task, attempt) in try scheduler.expire(now: now) {
      counters.leasesExpired += 1
      log("lease of \(task) attempt \(attempt) expired")
    }
    for (worker, record) in workers where now - record.lastSeen > scheduler.timing.leaseDuration {
      counters.workersLost += 1
      log("worker \(worker) is silent: its tasks go back")
      try scheduler.workerLost(worker)
      forget(worker)
    }
    for phase in 1..<max(scheduler.phaseCount, 1)
    where !startedPhases.contains(phase) && scheduler.hasUnfinishedTasks(in: phase) && scheduler.phasesFinished(before: phase) {
      startedPhases.insert(phase)
      log(describePhase?(phase) ?? "preparing phase \(phase)")
      preparation.start(phase: phase, preparePhase ?? { _ in [:] })
    }
    if let (phase, outcome) = preparation.take() {
      var prepared: [String: (settings: String, tensors: [WireTensor])] = [:]
      switch outcome {
      case .success(let payloads): prepared = payloads
      case .failure(let error): log("phase \(phase)'s tasks cannot be prepared: \(error)")
      }
      for task in scheduler.tasks(in: phase) {
        if let payload = prepared[task] {
          settings[task] = payload.settings
          payloads[task] = payload.tensors
        } else {
          try scheduler.fail(task: task, reason: "not prepared (see the coordinator's log)")
        }
      }
      scheduler.heldPhases.remove(phase)
    }
    if now - lastHeartbeat >= scheduler.timing.heartbeatInterval {
      lastHeartbeat = now
      for worker in workers.keys { try send(.heartbeat, to: worker) }
    }
    try growFirstPhase()
    // Each worker gets leases up to its slots (several members on one device).
    leasing: for worker in workers.keys.sorted() {
      while let record = workers[worker], record.announced, record.running < record.slots {
        guard let lease = try scheduler.lease(to: worker, now: now) else { break leasing }
        workers[worker]?.running += 1
        try send(.task(TaskAssignment(
          task: lease.task, attempt: lease.attempt, settings: settings[lease.task] ?? "{}", tensors: payloads[lease.task] ?? [],
          data: record.sharedData ? nil : servedData?.offer)), to: worker)
      }
    }
  }

  /// Asks the task source for tasks when a worker waits and nothing can be leased.
  private func growFirstPhase() throws {
    guard let taskSource, scheduler.growingPhases.contains(0), !scheduler.hasLeasableTask,
      workers.values.contains(where: { $0.announced && $0.running < $0.slots })
    else { return }
    let proposal: TaskProposal
    do { proposal = try taskSource(scheduler.unfinishedTasks(in: 0)) } catch {
      log("no more tasks can be proposed: \(error); the phase ends with the \(scheduler.tasks(in: 0).count) it has")
      scheduler.growingPhases.remove(0)
      return
    }
    switch proposal {
    case .wait: break
    case .exhausted: scheduler.growingPhases.remove(0)
    case .tasks(let tasks):
      for task in tasks {
        try scheduler.propose(task: task.task, phase: 0, proposal: task.proposal)
        settings[task.task] = task.settings
      }
    }
  }

  func send(_ message: Message, to worker: String) throws { try send(frames: try Framing.encode(message), to: worker) }

  /// A message's frames to a worker's current connection.
  private func send(frames: [[UInt8]], to worker: String) throws {
    try socket.send([Array((connections[worker] ?? worker).utf8)] + frames)
  }
}

/// A task source's answer (`Coordinator.taskSource`).
public enum TaskProposal: Sendable {
  /// New tasks: each with the settings its worker gets and what it was made from (for the
  /// journal).
  case tasks([ProposedTask])
  /// None now (the source waits for running tasks).
  case wait
  /// None ever again: the phase is complete once its tasks finish.
  case exhausted
}

public struct ProposedTask: Sendable {
  public var task: String
  public var settings: String
  public var proposal: String

  public init(task: String, settings: String, proposal: String) {
    self.task = task
    self.settings = settings
    self.proposal = proposal
  }
}

/// The identities a newer process took the name of, each with that name: the most recent
/// thousand (a worker restarted every minute for a day stays within it).
struct SupersededIdentities {
  private var names: [String: String] = [:]
  private var order: [String] = []
  static let capacity = 1000

  subscript(identity: String) -> String? { names[identity] }

  mutating func insert(_ identity: String, name: String) {
    if names.updateValue(name, forKey: identity) == nil { order.append(identity) }
    if order.count > Self.capacity { names[order.removeFirst()] = nil }
  }
}

/// One phase's preparation at a time, on its own thread.
final class PhasePreparation: @unchecked Sendable {
  typealias Payloads = [String: (settings: String, tensors: [WireTensor])]
  private let lock = NSLock()
  private var finished: (Int, Result<Payloads, Error>)?

  func start(phase: Int, _ prepare: @escaping (Int) throws -> Payloads) {
    let thread = Thread { [self] in
      let outcome = Result { try prepare(phase) }
      lock.lock()
      finished = (phase, outcome)
      lock.unlock()
    }
    thread.name = "quorum-phase-\(phase)"
    thread.start()
  }

  /// The finished preparation, once.
  func take() -> (Int, Result<Payloads, Error>)? {
    lock.lock()
    defer { lock.unlock() }
    let outcome = finished
    finished = nil
    return outcome
  }
}

/// Results decoded (LZ4, the checkpoint loaded into its model) one at a time on a thread
/// of their own, so that a large result does not stall the coordinator's loop: its
/// heartbeats, leases and status go on while the bytes are decoded.
final class ResultDecoding: @unchecked Sendable {
  typealias Outcome = (task: String, attempt: Int, worker: String, result: Result<TaskResult, Error>)
  private let queue = DispatchQueue(label: "quorum-result-decoding")
  private let lock = NSLock()
  private var finished: [Outcome] = []
  private var pending = 0

  /// Whether a result is still being decoded.
  var isBusy: Bool {
    lock.lock()
    defer { lock.unlock() }
    return pending > 0 || !finished.isEmpty
  }

  func start(task: String, attempt: Int, worker: String, _ decode: @escaping () throws -> TaskResult) {
    lock.lock()
    pending += 1
    lock.unlock()
    queue.async { [self] in
      let result = Result { try decode() }
      lock.lock()
      finished.append((task, attempt, worker, result))
      pending -= 1
      lock.unlock()
    }
  }

  /// The results decoded since the last call, in the order they arrived.
  func take() -> [Outcome] {
    lock.lock()
    defer { lock.unlock() }
    let outcomes = finished
    finished.removeAll()
    return outcomes
  }
}
