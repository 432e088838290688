/// Every message of the protocol (docs/protocol.md).
public enum Message: Equatable {
  case hello(Hello)
  case task(TaskAssignment)
  case heartbeat
  case progress(ProgressReport)
  case result(TaskResult)
  case acknowledgement(Acknowledgement)
  case disconnect(reason: String)
  case reject(reason: String)
  /// A worker hands a task back: it failed there (out of device memory, bad data) and the
  /// worker stays to take another.
  case failure(TaskFailure)
  /// The coordinator asks a worker to end a task after its current epoch and send what it
  /// has (a search's hopeless trial: successive halving). A worker that does not know the
  /// message ignores it and finishes the task.
  case stop(TaskStop)
  /// A worker asks for a chunk of a served data set; the coordinator answers with it.
  case dataRequest(DataRequest)
  case dataChunk(DataChunk)

  /// The type byte of the header.
  public var type: UInt8 {
    switch self {
    case .hello: return 1
    case .task: return 2
    case .heartbeat: return 3
    case .progress: return 4
    case .result: return 5
    case .acknowledgement: return 6
    case .disconnect: return 7
    case .reject: return 8
    case .failure: return 9
    case .stop: return 10
    case .dataRequest: return 11
    case .dataChunk: return 12
    }
  }
}

/// A worker introduces itself, at every (re)connection, with the leases it is still
/// working on: a lease the coordinator granted it that is not listed was lost (the worker
/// restarted, or its task crashed) and goes back at once instead of at lease expiry.
public struct Hello: Codable, Equatable, Sendable {
  public var worker: String
  public var version: String
  public var devices: [String]
  public var threads: Int
  /// Task id → attempt of the tasks this worker runs or has queued.
  public var running: [String: Int]
  /// How many tasks it trains at once (several members on one device); absent: one.
  public var slots: Int?
  /// Whether it reads the experiment's data paths itself (a worker on the coordinator's
  /// machine or file system): then its leases offer no served data.
  public var sharedData: Bool?
  /// The version of the task specifications it reads (a lease's settings); absent: a
  /// release from before they were versioned. A coordinator that leases another version
  /// refuses it by name.
  public var taskSpecification: Int?

  public init(
    worker: String, version: String, devices: [String], threads: Int, running: [String: Int] = [:], slots: Int? = nil, sharedData: Bool? = nil,
    taskSpecification: Int? = nil
  ) {
    self.worker = worker
    self.version = version
    self.devices = devices
    self.threads = threads
    self.running = running
    self.slots = slots
    self.sharedData = sharedData
    self.taskSpecification = taskSpecification
  }
}

/// A task lease: the attempt number makes a late result of an expired lease recognisable.
public struct TaskAssignment: Codable, Equatable, Sendable {
  public var task: String
  public var attempt: Int
  /// The task's settings, a JSON object as text (the experiment's resolved variant and fold).
  public var settings: String
  /// Tensors the task needs beyond the data (a distilled student's teacher targets); they
  /// travel as frames after the header, like a result's.
  public var tensors: [WireTensor] = []
  /// The data set the coordinator serves for this task, when it serves one.
  public var data: DataOffer?

  enum CodingKeys: String, CodingKey { case task, attempt, settings, data }

  public init(task: String, attempt: Int, settings: String, tensors: [WireTensor] = [], data: DataOffer? = nil) {
    self.task = task
    self.attempt = attempt
    self.settings = settings
    self.tensors = tensors
    self.data = data
  }
}

public struct ProgressReport: Codable, Equatable, Sendable {
  public var task: String
  public var attempt: Int
  public var epoch: Int
  public var loss: Double
  /// The epoch's validation score by the task's selection metric (the experiment's
  /// `metric:`; negated where lower is better, as `ClassificationMetrics.score`).
  public var validationMetric: Double?
  public var imagesPerSecond: Double

  public init(task: String, attempt: Int, epoch: Int, loss: Double, validationMetric: Double?, imagesPerSecond: Double) {
    self.task = task
    self.attempt = attempt
    self.epoch = epoch
    self.loss = loss
    self.validationMetric = validationMetric
    self.imagesPerSecond = imagesPerSecond
  }
}

/// A finished task's tensors (out-of-fold logits, test logits) and files (the checkpoint).
public struct TaskResult: Equatable, Sendable {
  public var task: String
  public var attempt: Int
  public var tensors: [WireTensor]
  public var files: [WireFile]

  public init(task: String, attempt: Int, tensors: [WireTensor], files: [WireFile] = []) {
    self.task = task
    self.attempt = attempt
    self.tensors = tensors
    self.files = files
  }
}

public struct Acknowledgement: Codable, Equatable, Sendable {
  public var task: String
  public var attempt: Int
  /// False when the result was late (its lease had expired), a duplicate, or refused.
  public var stored: Bool
  /// Why a result of a current lease was refused (not what its task returns): the worker
  /// logs it; the attempt counts as failed.
  public var refusal: String?

  public init(task: String, attempt: Int, stored: Bool, refusal: String? = nil) {
    self.task = task
    self.attempt = attempt
    self.stored = stored
    self.refusal = refusal
  }
}

/// Why a task's attempt failed on a worker, in words the coordinator journals and shows.
/// Which lease to end early, and why (the worker's log says it).
public struct TaskStop: Codable, Equatable, Sendable {
  public var task: String
  public var attempt: Int
  public var reason: String

  public init(task: String, attempt: Int, reason: String) {
    self.task = task
    self.attempt = attempt
    self.reason = reason
  }
}

public struct TaskFailure: Codable, Equatable, Sendable {
  public var task: String
  public var attempt: Int
  public var reason: String
  /// True when another attempt would fail the same way (training diverged: it is
  /// deterministic): the task is marked failed at once instead of retried.
  public var permanent: Bool?

  public init(task: String, attempt: Int, reason: String, permanent: Bool? = nil) {
    self.task = task
    self.attempt = attempt
    self.reason = reason
    self.permanent = permanent
  }
}
