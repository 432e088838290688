import CZeroMQ
import Foundation
import Wire

/// A worker's loop: a DEALER socket, up to `slots` tasks at once, each on its own thread
/// (several members on one device), heartbeats from this loop (which training never
/// blocks), reconnection with backoff when the coordinator falls silent.
public final class Worker {
  /// Runs a task and returns its tensors and files; reports progress through the callback.
  public typealias Runner = (TaskAssignment, _ progress: @escaping (ProgressReport) -> Void) throws -> TaskOutput

  /// The keys of an encrypted connection: this worker's pair and the coordinator's
  /// public key.
  public struct Security {
    public var keys: CurveKeys
    public var serverPublicKey: String

    public init(keys: CurveKeys, serverPublicKey: String) {
      self.keys = keys
      self.serverPublicKey = serverPublicKey
    }
  }

  public let name: String
  /// The version of the task specifications its runner reads, said in every hello.
  public var taskSpecification: Int?
  /// This process's routing identity (`PeerIdentity`): the same on every reconnection.
  let identity: String
  let transport: any WorkerTransport
  var endpoint: String { transport.endpoint }
  let timing: Timing
  let runner: Runner
  let devices: [String]
  let threads: Int
  /// Tasks trained at once.
  let slots: Int
  let log: (String) -> Void

  // Shared with the task thread, behind `lock`.
  private let lock = NSLock()
  private var outbox: [Message] = []
  private var running: [TaskAssignment] = []
  /// Leases received while every slot is busy (after a reconnect the coordinator may hand
  /// out a task before an old one ends): each starts when a running task finishes.
  private var queued: [TaskAssignment] = []
  /// The current connection, which task threads wake to send the outbox at once (without
  /// it a result would wait for the loop's next receive timeout).
  private var connection: (any WorkerConnection)?

  /// The leases the coordinator asked to end early (`Message.stop`): a runner asks it after
  /// each epoch.
  public let stops: StopRequests
  /// Served data sets being fetched (`DataTransfers.fetch`, from a runner).
  public let transfers: DataTransfers
  /// Whether this worker reads the experiment's data paths itself (its hello says so, and
  /// the coordinator offers it no served data).
  let sharedData: Bool

  /// A worker of the coordinator at `endpoint`, over ZeroMQ (CURVE where `security` is given).
  public convenience init(
    name: String, endpoint: String, security: Security? = nil, context: ZeroMQContext, timing: Timing = Timing(), devices: [String] = ["cpu"],
    threads: Int = 1, slots: Int = 1, stops: StopRequests = StopRequests(), transfers: DataTransfers = DataTransfers(),
    sharedData: Bool = false, log: @escaping (String) -> Void = { _ in }, runner: @escaping Runner
  ) {
    self.init(
      name: name, transport: ZeroMQWorkerTransport(endpoint: endpoint, security: security, context: context), timing: timing,
      devices: devices, threads: threads, slots: slots, stops: stops, transfers: transfers, sharedData: sharedData, log: log,
      runner: runner)
  }

  /// A worker over any transport (an `InMemoryRouter` in protocol tests).
  public init(
    name: String, transport: any WorkerTransport, timing: Timing = Timing(), devices: [String] = ["cpu"],
    threads: Int = 1, slots: Int = 1, stops: StopRequests = StopRequests(), transfers: DataTransfers = DataTransfers(),
    sharedData: Bool = false, log: @escaping (String) -> Void = { _ in }, runner: @escaping Runner
  ) {
    precondition(slots >= 1, "a worker trains at least one task at a time")
    self.stops = stops
    self.transfers = transfers
    self.sharedData = sharedData
    self.slots = slots
    self.name = name
    identity = PeerIdentity.identity(name: name, token: PeerIdentity.token())
    self.transport = transport
    self.timing = timing
    self.runner = runner
    self.log = log
    self.devices = devices
    self.threads = threads
  }

  /// Works until the coordinator says the experiment is finished (or `stop` says so).
  public func run(stop: () -> Bool = { false }) throws {
    var backoff = timing.reconnectInitial
    transfers.post = { [self] in post($0) }
    defer {
      transfers.post = nil
      lock.lock()
      connection = nil
      lock.unlock()
    }
    while !stop() {
      let socket = try transport.connect(identity: identity)
      lock.lock()
      connection = socket
      lock.unlock()
      // Sends never block the loop: with no connection (a refused handshake, a coordinator
      // that is down) a message waits in the outbox, a heartbeat is skipped.
      _ = try socket.sendIfReady(try Framing.encode(.hello(hello())))
      var lastHeard = Date().timeIntervalSince1970
      var heardAny = false
      var lastSent = 0.0
      var handshakes = 0
      while !stop() {
        let now = Date().timeIntervalSince1970
        let (notes, connections) = try socket.events()
        for note in notes { log(note) }
        // This socket connected again (the coordinator restarted, or the network came
        // back): hello again, so that a coordinator that has never seen this worker learns
        // what it runs before handing it work. (The first hello was queued at connect.)
        for _ in 0..<connections {
          handshakes += 1
          if handshakes > 1 { _ = try socket.sendIfReady(try Framing.encode(.hello(hello()))) }
        }
        if let frames = try socket.receive(timeout: timing.heartbeatInterval / 4) {
          lastHeard = now
          heardAny = true
          backoff = timing.reconnectInitial
          switch try? Framing.decode(frames) {
          case .task(let task): start(task)
          case .dataChunk(let chunk): transfers.deliver(chunk)
          case .stop(let stop):
            log("the coordinator stops \(stop.task) attempt \(stop.attempt) after this epoch: \(stop.reason)")
            stops.request(task: stop.task, attempt: stop.attempt)
          case .disconnect(let reason):
            log("coordinator: \(reason)")
            return
          case .reject(let reason): throw WorkerError("the coordinator refused this worker: \(reason)")
          case .acknowledgement(let acknowledgement):
            if let refusal = acknowledgement.refusal {
              log("the coordinator refused the result of \(acknowledgement.task) attempt \(acknowledgement.attempt): \(refusal)")
            }
          case .heartbeat, .none: break
          default: break
          }
        }
        // What the task thread produced: progress, then the result.
        lock.lock()
        let pending = outbox
        outbox.removeAll()
        lock.unlock()
        var unsent: [Message] = []
        for message in pending {
          // Order matters (progress before the result): once one waits, the rest wait.
          if unsent.isEmpty, try socket.sendIfReady(try Framing.encode(message)) { continue }
          unsent.append(message)
        }
        if !unsent.isEmpty {
          lock.lock()
          outbox.insert(contentsOf: unsent, at: 0)
          lock.unlock()
        }
        if now - lastSent >= timing.heartbeatInterval {
          _ = try socket.sendIfReady(try Framing.encode(.heartbeat))
          lastSent = now
        }
        if now - lastHeard > timing.leaseDuration {
          let never = heardAny ? "" : " (it never answered this connection: check the address and the coordinator's log)"
          log("coordinator silent for \(Int(now - lastHeard)) s: reconnecting in \(Int(backoff)) s\(never)")
          break
        }
      }
      if stop() { return }
      Thread.sleep(forTimeInterval: backoff)
      backoff = min(backoff * 2, timing.reconnectMaximum)
    }
  }

  /// The hello of this moment: the leases this worker still holds (all but `finishing`).
  private func hello(finishing: TaskAssignment? = nil) -> Hello {
    lock.lock()
    defer { lock.unlock() }
    var running: [String: Int] = [:]
    for task in self.running + queued where task != finishing { running[task.task] = task.attempt }
    return Hello(
      worker: name, version: "0.1.0", devices: devices, threads: threads, running: running, slots: slots == 1 ? nil : slots,
      sharedData: sharedData ? true : nil, taskSpecification: taskSpecification)
  }

  /// Queues a message for the loop to send, and wakes it (from any thread).
  private func post(_ message: Message) {
    lock.lock()
    outbox.append(message)
    connection?.wake()
    lock.unlock()
  }

  private func start(_ task: TaskAssignment) {
    lock.lock()
    defer { lock.unlock() }
    // Up to `slots` at a time: a further lease waits for one to end.
    guard running.count < slots else {
      queued.append(task)
      return
    }
    running.append(task)
    let thread = Thread { [self] in
      let post: (Message) -> Void = { self.post($0) }
      do {
        let output = try runner(task) { post(.progress($0)) }
        post(.result(TaskResult(task: task.task, attempt: task.attempt, tensors: output.tensors, files: output.files)))
      } catch {
        // The task goes back with its reason (an attempt used, or all of them where another
        // would fail the same way); this worker stays for the next.
        log("task \(task.task) failed: \(error)")
        post(.failure(TaskFailure(
          task: task.task, attempt: task.attempt, reason: String("\(error)".prefix(8000)),
          permanent: error is PermanentTaskFailure ? true : nil)))
      }
      self.lock.lock()
      self.running.removeAll { $0 == task }
      let next = self.queued.isEmpty ? nil : self.queued.removeFirst()
      self.lock.unlock()
      if let next { self.start(next) }
    }
    thread.name = "quorum-task"
    thread.start()
  }
}

/// Turns the connection events of a worker's socket into what the user must know: a
/// refusal by the coordinator ends the worker with the reason and the fix, since retrying
/// cannot help.
struct HandshakeWatch {
  let endpoint: String
  let security: Worker.Security?
  var succeeded = false
  /// Connections the coordinator dropped before any handshake completed.
  var droppedHandshakes = 0

  mutating func observe(_ event: ZeroMQMonitor.Event) throws -> String? {
    switch event.event {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
      let first = !succeeded
      succeeded = true
      droppedHandshakes = 0
      return first ? "connected to \(endpoint)\(security == nil ? " (plain TCP)" : " (CURVE encrypted)")" : nil
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH where event.value == 500:
      // 500: the coordinator could not read its allow-list at all; this key is not the problem.
      throw WorkerError("the coordinator at \(endpoint) could not read its --allow list (ZAP status 500): its log names the file; fix it there (this worker's key need not change)")
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      throw WorkerError("the coordinator at \(endpoint) refused this worker's key (ZAP status \(event.value)): add this worker's public key \(security?.keys.publicKey ?? "") (the .pub file beside its --key) to the coordinator's --allow folder (if it is listed, check that the coordinator's --allow names that folder)")
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL where Int32(bitPattern: event.value) == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
      if security == nil {
        throw WorkerError("the coordinator at \(endpoint) requires CURVE encryption: pass --key (this worker's .key file) and --server-key (the coordinator's .pub file)")
      }
      throw WorkerError("the coordinator at \(endpoint) does not use CURVE encryption, this worker does: start the coordinator with --key and --allow, or drop --key and --server-key on a trusted network")
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      let detail = event.event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ? "no detail" : "protocol error 0x" + String(event.value, radix: 16)
      if security == nil {
        throw WorkerError("the handshake with the coordinator at \(endpoint) failed (\(detail)): it probably requires CURVE encryption; pass --key (this worker's .key file) and --server-key (the coordinator's .pub file)")
      }
      throw WorkerError("the CURVE handshake with the coordinator at \(endpoint) failed (\(detail)): is --server-key the coordinator's public key (its .pub file)?")
    case ZMQ_EVENT_DISCONNECTED where !succeeded && security != nil:
      // A CURVE server that cannot open the client's hello (a wrong server key) closes
      // the connection without a word.
      droppedHandshakes += 1
      if droppedHandshakes >= 3 {
        throw WorkerError("the coordinator at \(endpoint) closed the connection during the CURVE handshake \(droppedHandshakes) times: --server-key is probably not the coordinator's public key (its .pub file)")
      }
      return nil
    default:
      return nil
    }
  }
}

/// A task's failure that another attempt would repeat (its training diverged, and training
/// is deterministic): a runner throws it so that the task fails at once, not after every
/// retry.
public struct PermanentTaskFailure: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// What a task produced: tensors (logits) and files (the checkpoint).
public struct TaskOutput {
  public var tensors: [WireTensor]
  public var files: [WireFile]

  public init(tensors: [WireTensor], files: [WireFile] = []) {
    self.tensors = tensors
    self.files = files
  }
}

public struct WorkerError: Error, CustomStringConvertible {
  public let description: String
  init(_ description: String) { self.description = description }
}

/// Leases a coordinator asked to end early, shared by a worker's loop (which records them)
/// and its task threads (which ask after each epoch).
public final class StopRequests: @unchecked Sendable {
  private let lock = NSLock()
  private var requested: Set<String> = []

  public init() {}

  func request(task: String, attempt: Int) {
    lock.lock()
    requested.insert("\(task)#\(attempt)")
    lock.unlock()
  }

  /// Whether the coordinator asked to end this lease.
  public func isRequested(task: String, attempt: Int) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return requested.contains("\(task)#\(attempt)")
  }
}
