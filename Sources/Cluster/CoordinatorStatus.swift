import Foundation

/// What a coordinator reports about itself (the status endpoint's JSON, and the source of
/// its Prometheus metrics).
public struct CoordinatorStatus: Codable, Equatable, Sendable {
  public struct Tasks: Codable, Equatable, Sendable {
    public var total: Int
    public var pending: Int
    public var running: Int
    public var stored: Int
    public var failed: Int
  }

  public struct WorkerState: Codable, Equatable, Sendable {
    public var name: String
    public var busy: Bool
    public var task: String?
    public var epoch: Int?
    public var loss: Double?
    public var imagesPerSecond: Double?
    public var secondsSinceHeard: Double
  }

  public var experiment: String
  public var version: String
  /// The coordinator's clock when the snapshot was taken (seconds since 1970): workers
  /// compare theirs with it (`quorum doctor`).
  public var time: Double
  public var uptimeSeconds: Double
  public var finished: Bool
  public var tasks: Tasks
  public var workers: [WorkerState]
  /// Summed over the workers' latest progress reports.
  public var imagesPerSecond: Double
  public var counters: CoordinatorCounters
  /// Tasks that used up their attempts, with the last reason.
  public var failures: [String: String]
}

/// Events since the coordinator started (Prometheus counters).
public struct CoordinatorCounters: Codable, Equatable, Sendable {
  public var messagesReceived = 0
  public var messagesRejected = 0
  public var resultsStored = 0
  public var resultsDiscarded = 0
  /// Results of current leases that were not what their task returns (attempts failed).
  public var resultsRefused = 0
  public var leasesExpired = 0
  public var workersLost = 0
  /// Bytes sent to workers fetching the served data set (`data_access: served`), as they
  /// went on the wire (LZ4-compressed chunks and their headers).
  public var dataBytesServed = 0

  public init() {}
}

extension Coordinator {
  /// A snapshot of the coordinator's state.
  public func status(experiment: String, version: String) -> CoordinatorStatus {
    let now = clock()
    var tasks = CoordinatorStatus.Tasks(total: scheduler.order.count, pending: 0, running: 0, stored: 0, failed: 0)
    var failures: [String: String] = [:]
    for (task, state) in scheduler.states {
      switch state {
      case .pending: tasks.pending += 1
      case .leased: tasks.running += 1
      case .stored: tasks.stored += 1
      case .failed(_, let reason):
        tasks.failed += 1
        failures[task] = reason
      }
    }
    let workerStates = workers.sorted { $0.key < $1.key }.map { name, record in
      CoordinatorStatus.WorkerState(
        name: name, busy: record.busy, task: record.progress?.task, epoch: record.progress?.epoch, loss: record.progress?.loss,
        imagesPerSecond: record.progress?.imagesPerSecond, secondsSinceHeard: max(0, now - record.lastSeen))
    }
    return CoordinatorStatus(
      experiment: experiment, version: version, time: Date().timeIntervalSince1970, uptimeSeconds: now - startTime, finished: scheduler.isFinished, tasks: tasks,
      workers: workerStates, imagesPerSecond: workerStates.compactMap(\.imagesPerSecond).reduce(0, +), counters: counters,
      failures: failures)
  }
}
