import ArgumentParser
import CUDA
import Cluster
import Data
import Experiment
import Foundation
import Pipeline
import Status
import Tensor
import Training
import RunLayout

/// Without keys, plain TCP is allowed on loopback only; elsewhere the user must say
/// --insecure.
func checkPlainTCP(_ endpoint: String, insecure: Bool, keysHint: String) throws {
  let host = endpoint.replacingOccurrences(of: "tcp://", with: "").split(separator: ":").dropLast().joined(separator: ":")
  let loopback = host.hasPrefix("127.") || host == "localhost" || host == "[::1]"
  if !loopback && !insecure {
    throw ValidationError("\(endpoint) is not a loopback address: traffic would travel unencrypted and anyone could join. \(keysHint) (see `quorum keys generate`), or pass --insecure on a network you trust")
  }
}

struct CoordinatorCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "coordinator",
    abstract: "Serve an experiment's tasks to workers; resumes from the run directory's journal after a restart.")

  @Argument(help: "The experiment file.") var file: String
  @Option(help: "ZeroMQ endpoint to bind.") var bind: String = "tcp://127.0.0.1:5555"
  @Option(help: "The coordinator's CURVE secret key file (NAME.key): encrypts every connection.") var key: String?
  @Option(help: "Worker public keys admitted: a folder of .pub files, or a file of keys, one per line. Read at every handshake.")
  var allow: String?
  @Option(help: "HOST:PORT of the HTTP status endpoint (/status, /metrics, /healthz), or off.") var status: String = "127.0.0.1:8750"
  @Flag(help: "Allow plain TCP on a non-loopback address.") var insecure = false

  func validate() throws {
    if (key == nil) != (allow == nil) {
      throw ValidationError("--key and --allow go together: the coordinator's secret key and the worker keys it admits")
    }
    do { try Endpoint.check(bind, binding: true) } catch { throw ValidationError("--bind \(error)") }
    if key == nil { try checkPlainTCP(bind, insecure: insecure, keysHint: "Pass --key and --allow") }
  }

  func run() throws {
    setvbuf(stdout, nil, _IOLBF, 0)  // one line at a time, also into a file or a pipe
    var setup = try ExperimentSetup(file: file)
    setup.log = { print($0) }
    if let problem = setup.experiment.device.unavailability() {
      throw ValidationError("\(file): device: \(setup.experiment.device): \(problem); use device: cpu or auto")
    }
    try setup.prepareRunDirectory()
    let context = ZeroMQContext()
    let log: (String) -> Void = { print("coordinator: \($0)") }
    for warning in setup.data.warnings { log("warning: data: \(warning)") }
    // The authentication handler binds before the socket, so no connection is ever
    // accepted unchecked.
    var authentication: ZAPHandler?
    let socket = try ZeroMQSocket(.router, context: context)
    if let key, let allow {
      let keys = try CurveKeys.read(secretKeyFile: key)
      if let warning = CurveKeys.exposure(ofSecretKeyFile: key) { log("warning: \(warning)") }
      let allowList = try AllowList(path: allow)
      authentication = try ZAPHandler(context: context, allowList: allowList, log: log)
      try socket.makeCurveServer(keys: keys)
      log("CURVE encryption on; public key \(keys.publicKey); \(try allowList.keys().count) worker keys admitted from \(allow)")
    }
    try socket.bind(bind)
    let coordinator = try setup.makeCoordinator(socket: socket, log: log)
    // Workers that have no copy of the data get it from here, by its hash.
    if setup.experiment.dataAccess == .served && !coordinator.scheduler.isFinished {
      let started = Date()
      let bundle = try DataBundle.write(setup.data, into: RunDirectory(setup.experiment.runDirectory).servedData)
      coordinator.servedData = try ServedData(path: bundle.path, hash: bundle.hash, bytes: bundle.bytes)
      log(String(
        format: "serving the data set %@… (%.1f MB, made in %.1f s) to workers that do not read its paths (data_access: served)",
        String(bundle.hash.prefix(12)), Double(bundle.bytes) / 1e6, Date().timeIntervalSince(started)))
    }
    let statusServer = try startStatusServer(status, coordinator: coordinator, setup: setup, log: log)
    print("coordinator: \(setup.tasks.count + setup.laterTasks.count) tasks on \(socket.lastEndpoint), run directory \(setup.experiment.runDirectory)")
    try coordinator.run()
    statusServer?.publish(coordinator.status(experiment: setup.experiment.name, version: Release.version))
    print(try RunReport.combine(setup: setup).text)
    statusServer?.stop()
    withExtendedLifetime(socket) {}
    authentication?.stop()
    try reportFailures(coordinator, setup: setup)
  }
}

/// Lists the tasks that used up their attempts and exits with status 1 if there are any
/// (the others' results are kept: running the experiment again retries only those). A
/// search's failed trials are listed and tolerated: a configuration that diverges is one
/// of a search's answers (its trial has no score), not a failure of the run.
func reportFailures(_ coordinator: Coordinator, setup: ExperimentSetup) throws {
  let (failed, failedTrials) = setup.failures(of: coordinator)
  if !failedTrials.isEmpty {
    print("search: \(failedTrials.count) trial task\(failedTrials.count == 1 ? "" : "s") failed (no score):\n" + failedTrials.joined(separator: "\n"))
  }
  guard !failed.isEmpty else { return }
  print("\(failed.count) task\(failed.count == 1 ? "" : "s") failed:\n" + failed.joined(separator: "\n"))
  throw ExitCode(1)
}

/// Starts the status endpoint (unless "off") and has the coordinator publish to it four
/// times a second.
func startStatusServer(_ address: String, coordinator: Coordinator, setup: ExperimentSetup, log: (String) -> Void) throws -> StatusServer? {
  guard address != "off" else { return nil }
  let server = try StatusServer(listen: address)
  log("status on http://\(server.address) (/status, /metrics, /healthz)")
  var lastPublished = 0.0
  let previous = coordinator.onTick
  let publish = {
    server.publish(coordinator.status(experiment: setup.experiment.name, version: Release.version))
  }
  publish()
  coordinator.onTick = {
    previous?()
    let now = Date().timeIntervalSince1970
    if now - lastPublished >= 0.25 {
      lastPublished = now
      publish()
    }
  }
  return server
}

struct WorkerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "worker", abstract: "Train tasks from a coordinator, one at a time, and send back their logits.")

  @Option(help: "The coordinator's endpoint.") var connect: String = "tcp://127.0.0.1:5555"
  @Option(help: "This worker's name (unique per coordinator).") var name: String = ProcessInfo.processInfo.hostName + "-\(getpid())"
  @Option(help: "CPU threads for training.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
  @Option(help: "This worker's CURVE secret key file (NAME.key); its .pub must be in the coordinator's --allow list.") var key: String?
  @Option(help: "The coordinator's public key file (its .pub).") var serverKey: String?
  @Option(
    help: """
      auto (the CPU), cpu, cuda or cuda:N (the CUDA backend on that GPU), cuda:all (every GPU of this machine, each \
      with its own tasks), or cuda-emulated (the CUDA backend on the emulated device, for checking: docs/cuda.md).
      """)
  var device: ComputeDevice = .automatic
  @Option(
    help: """
      Tasks (ensemble members) trained at once on each device, each on a backend and stream of its own: for a GPU that \
      one small model cannot fill. On the CPU the --threads are shared among them.
      """)
  var membersPerDevice: Int = 1
  @Flag(help: "Allow plain TCP to a non-loopback coordinator.") var insecure = false
  @Flag(
    help: """
      Read the experiment's data paths on this machine (the coordinator's own, or a shared file system) instead of \
      fetching the data set from the coordinator.
      """)
  var sharedData = false
  @Option(
    help: """
      Where fetched data sets are kept, by hash, for later tasks and runs (default: $QUORUM_CACHE, else \
      $XDG_CACHE_HOME/quorum, else ~/.cache/quorum).
      """)
  var cache: String?

  func validate() throws {
    guard membersPerDevice >= 1 else { throw ValidationError("--members-per-device must be at least 1") }
    if let problem = PeerIdentity.problem(with: name) { throw ValidationError("--name \(problem)") }
    if let problem = device.unavailability() { throw ValidationError("--device \(device): \(problem); use --device cpu or auto") }
    if (key == nil) != (serverKey == nil) {
      throw ValidationError("--key and --server-key go together: this worker's secret key and the coordinator's public key")
    }
    do { try Endpoint.check(connect, binding: false) } catch { throw ValidationError("--connect \(error)") }
    if key == nil { try checkPlainTCP(connect, insecure: insecure, keysHint: "Pass --key and --server-key") }
  }

  func run() throws {
    var security: Worker.Security?
    if let key, let serverKey {
      security = Worker.Security(keys: try CurveKeys.read(secretKeyFile: key), serverPublicKey: try CurveKeys.read(publicKeyFile: serverKey))
    }
    let log: (String) -> Void = { FileHandle.standardError.write(Data("worker \(name): \($0)\n".utf8)) }
    if let key, let warning = CurveKeys.exposure(ofSecretKeyFile: key) { log("warning: \(warning)") }
    let devices = try device.devices()
    let slots = devices.count * membersPerDevice
    let stops = StopRequests()
    let transfers = DataTransfers()
    let runner = TaskRunner(
      threads: device.isCUDA ? threads : max(1, threads / membersPerDevice), devices: devices, stops: stops, log: log,
      dataCache: DataCache(folder: cache ?? DataCache.defaultFolder(), transfers: transfers, log: log))
    if device == .automatic {
      let gpus = (try? CUDADriverAPI().gpus()) ?? []
      log("device auto: training on the CPU, \(threads) threads" + (gpus.isEmpty ? "" : " (\(gpus.count) GPU\(gpus.count == 1 ? "" : "s") found: --device cuda:N trains on one, cuda:all on each; docs/cuda.md)"))
    }
    // A device that cannot start (no driver, no such GPU, a kernel that fails to load) ends
    // the worker now, with the reason, rather than every task it would be given.
    let names = try runner.startDevices()
    log("training on \(names.joined(separator: ", "))" + (devices.contains { !$0.isCUDA } ? " with \(GEMMLibrary.summary().line)" : "") + (slots == 1 ? "" : ", \(slots) members at once" + (devices.count == 1 ? "" : " (\(membersPerDevice) per device)")))
    // Fault injection for the cluster's tests: the process dies as it starts this task.
    let crashTask = ProcessInfo.processInfo.environment["QUORUM_FAULT_CRASH_TASK"]
    let worker = Worker(
      name: name, endpoint: connect, security: security, context: ZeroMQContext(), devices: device == .automatic ? ["cpu"] : devices.map(\.description),
      threads: threads, slots: slots, stops: stops, transfers: transfers, sharedData: sharedData, log: log,
      runner: { task, progress in
        if let crashTask, task.task == crashTask {
          log("QUORUM_FAULT_CRASH_TASK: crashing on \(task.task)")
          Foundation.exit(70)
        }
        return try runner.run(task, progress: progress)
      })
    worker.taskSpecification = TaskSpecification.currentVersion
    try worker.run()
  }
}

struct Run: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run an experiment on this machine: a coordinator and local worker processes, a live table, the scores.",
    discussion: "The embedded default. Results land in the experiment's run directory; running the same file again resumes.")

  @Argument(help: "The experiment file.") var file: String
  @Option(help: "Local worker processes.") var workers: Int = 1
  @Option(help: "Threads per worker (default: the cores divided among the workers).") var threads: Int?
  @Option(help: "Tasks each local worker trains at once (quorum worker --members-per-device).") var membersPerDevice: Int = 1
  @Option(help: "HOST:PORT of the HTTP status endpoint (/status, /metrics, /healthz), or off.") var status: String = "off"

  func run() throws {
    setvbuf(stdout, nil, _IOLBF, 0)  // one line at a time, also into a file or a pipe
    guard membersPerDevice >= 1 else { throw ValidationError("--members-per-device must be at least 1") }
    var setup = try ExperimentSetup(file: file)
    setup.log = { print($0) }
    if let problem = setup.experiment.device.unavailability() {
      throw ValidationError("\(file): device: \(setup.experiment.device): \(problem); use device: cpu or auto")
    }
    try setup.prepareRunDirectory()
    for warning in setup.data.warnings { print("warning: data: \(warning)") }
    let context = ZeroMQContext()
    let socket = try ZeroMQSocket(.router, context: context)
    try socket.bind("tcp://127.0.0.1:*")
    let endpoint = socket.lastEndpoint
    var messages: [String] = []
    let coordinator = try setup.makeCoordinator(socket: socket, log: { messages.append($0) })
    let perWorker = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / max(workers, 1))
    let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
    // A finished experiment (run again) needs no workers: it only prints its scores. A
    // task that kills every worker it meets stops at the retry limit.
    let localWorkers = try LocalWorkers(
      executable: executable, count: coordinator.scheduler.isFinished ? 0 : workers,
      restartLimit: setup.tasks.count * coordinator.scheduler.timing.retryLimit
    ) { [setup, perWorker, membersPerDevice] index in
      [
        "worker", "--connect", endpoint, "--name", LocalWorkers.name(index), "--threads", String(perWorker),
        "--device", setup.experiment.device.description, "--members-per-device", String(membersPerDevice),
        // On this machine: the workers read the data paths as the coordinator did.
        "--shared-data",
      ]
    }
    // Whatever ends this command (an error included) ends its workers: an orphaned worker
    // would retry a coordinator that is gone.
    defer { localWorkers.stop(grace: 0) }
    let refits = setup.experiment.refit?.variants.count ?? 0
    if let plan = setup.experiment.search {
      print("\(setup.experiment.name): a search of \(plan.trials) trials (\(plan.sampler.rawValue), \(plan.scheduleDescription), on \(plan.foldsDescription)), then its best \(plan.best) as members × \(setup.experiment.foldCount ?? 0) folds, \(workers) local worker\(workers == 1 ? "" : "s") × \(perWorker) threads")
    } else {
      print("\(setup.experiment.name): \(setup.experiment.tasks.count) tasks (\(setup.experiment.variants.count) variants × \(setup.experiment.foldCount ?? 0) folds)\(refits == 0 ? "" : " + \(refits) refit on all data")\(setup.laterTasks.isEmpty ? "" : " + \(setup.laterTasks.count) later (Noisy Student rounds, students)"), \(workers) local worker\(workers == 1 ? "" : "s") × \(perWorker) threads")
    }
    let start = Date()
    var lastDraw = Date.distantPast
    let table = LiveTable()
    coordinator.onTick = {
      if !coordinator.scheduler.isFinished { localWorkers.restartExited { messages.append($0) } }
      guard Date().timeIntervalSince(lastDraw) > 0.5 else { return }
      lastDraw = Date()
      for message in messages { table.message(message) }
      messages.removeAll()
      table.draw(coordinator: coordinator, total: coordinator.scheduler.order.count, elapsed: Date().timeIntervalSince(start))
    }
    let statusServer = try startStatusServer(status, coordinator: coordinator, setup: setup, log: { messages.append($0) })
    defer { statusServer?.stop() }
    try coordinator.run()
    for message in messages { table.message(message) }
    table.draw(coordinator: coordinator, total: coordinator.scheduler.order.count, elapsed: Date().timeIntervalSince(start))
    table.finish()
    localWorkers.stop(grace: 10)
    print(try RunReport.combine(setup: setup).text)
    print("results: \(setup.experiment.runDirectory): scores.csv, submission.csv, ensemble/, logits/, checkpoints/, folds.npy, journal.jsonl")
    try reportFailures(coordinator, setup: setup)
  }
}

/// The live progress: tasks by state, each worker's task, epoch and speed, and an ETA.
final class LiveTable {
  let terminal = isatty(STDOUT_FILENO) == 1
  private var drawnLines = 0
  private var lastLine = ""

  func message(_ text: String) {
    clear()
    print(text)
  }

  func draw(coordinator: Coordinator, total: Int, elapsed: Double) {
    let scheduler = coordinator.scheduler
    let stored = scheduler.count { if case .stored = $0 { return true }; return false }
    let failed = scheduler.count { if case .failed = $0 { return true }; return false }
    let running = scheduler.count { if case .leased = $0 { return true }; return false }
    let eta = stored > 0 ? elapsed / Double(stored) * Double(total - stored - failed) : .nan
    var lines = [String(format: "tasks: %d stored, %d running, %d pending, %d failed of %d   elapsed %.0f s   ETA %@",
      stored, running, total - stored - running - failed, failed, total, elapsed, eta.isFinite ? String(format: "%.0f s", eta) : "?")]
    for (name, record) in coordinator.workers.sorted(by: { $0.key < $1.key }) {
      if let progress = record.progress {
        lines.append(String(format: "  %@  %@  epoch %d  loss %.3f  %.0f img/s", name, progress.task, progress.epoch, progress.loss, progress.imagesPerSecond))
      } else {
        lines.append("  \(name)  \(record.busy ? "starting a task" : "idle")")
      }
    }
    if terminal {
      clear()
      print(lines.joined(separator: "\n"))
      drawnLines = lines.count
    } else {
      // Off a terminal, a line when the counts change, not every second.
      let counts = lines[0].components(separatedBy: "   elapsed").first ?? lines[0]
      if counts != lastLine {
        print(lines[0])
        lastLine = counts
      }
    }
  }

  func finish() { drawnLines = 0 }

  private func clear() {
    guard terminal, drawnLines > 0 else { return }
    print("\u{1B}[\(drawnLines)A\u{1B}[J", terminator: "")
    drawnLines = 0
  }
}
