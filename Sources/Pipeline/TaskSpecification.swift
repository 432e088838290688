import Data
import Experiment
import Foundation
import NN
import Training
import Wire

/// What a lease tells a worker to do, resolved once on the coordinator: the task's role
/// (what it trains on and what it returns), its whole training configuration, where its
/// data comes from and how its logits travel. A worker runs it as given: it parses no
/// experiment file. It travels as the lease's settings (JSON), and a worker refuses one of
/// another version by name (workers say in their hello which version they read, and a
/// coordinator turns away one that reads another before it leases anything).
public struct TaskSpecification: Codable, Equatable, Sendable {
  /// Raised whenever a field is added, removed or changes meaning.
  public static let currentVersion = 1

  public enum Role: Codable, Equatable, Sendable {
    /// A variant on a fold's training part, scored on its validation part: out-of-fold
    /// and test logits. A Noisy Student round's members are members too; the lease brings
    /// their pseudo-labels.
    case member(fold: Int)
    /// A search's trial on a fold: out-of-fold logits only (the test images must not
    /// steer the search).
    case trial(fold: Int)
    /// The variant on the whole training set: test logits only.
    case refit
    /// A student on the whole training set, towards the teacher's targets when the lease
    /// brings them, else on the labels: test logits only.
    case student

    public var isTrial: Bool { if case .trial = self { true } else { false } }

    /// The fold a member or trial holds out.
    public var fold: Int? {
      switch self {
      case .member(let fold), .trial(let fold): return fold
      case .refit, .student: return nil
      }
    }
  }

  public var version: Int
  public var variant: String
  public var role: Role
  /// The variant's configuration for the data's images, with the task's fixed choices (the
  /// last epoch kept, test logits made once at the end).
  public var configuration: TrainingConfiguration
  /// Where a worker that reads the paths finds the data (a served data set replaces it).
  public var data: DataSource
  public var logitsPrecision: WirePrecision
  /// The epochs at which a search trial under successive halving waits a moment for the
  /// coordinator's verdict on its report.
  public var rungs: [Int]

  public init(
    variant: String, role: Role, configuration: TrainingConfiguration, data: DataSource, logitsPrecision: WirePrecision = .float32,
    rungs: [Int] = []
  ) {
    version = Self.currentVersion
    self.variant = variant
    self.role = role
    self.configuration = configuration
    self.data = data
    self.logitsPrecision = logitsPrecision
    self.rungs = rungs
  }

  /// The specification of `variant` in `role` for the experiment's data.
  public init(_ variant: Experiment.Variant, role: Role, experiment: Experiment, training: ImageDataset) throws {
    self.init(
      variant: variant.name, role: role, configuration: try Self.configuration(of: variant, for: training, file: experiment.file),
      data: DataSource(experiment), logitsPrecision: WirePrecision(rawValue: experiment.logitsPrecision) ?? .float32,
      rungs: role.isTrial ? experiment.search?.halving?.rungs ?? [] : [])
  }

  /// A variant's configuration for the data's images. Task outputs must not pick their
  /// own epoch (out-of-fold predictions would be selected on themselves): the last
  /// epoch's weights are kept.
  public static func configuration(of variant: Experiment.Variant, for training: ImageDataset, file: String) throws -> TrainingConfiguration {
    var configuration = try variant.configuration(
      TrainingConfiguration(model: MobileNetV2Configuration(
        inputChannels: training.channels, classes: training.classes, imageHeight: training.height, imageWidth: training.width)),
      file: file)
    configuration.restoreBest = false
    // A task reports only its validation score each epoch; its test logits are made once,
    // at the end (the test set scored every epoch was work thrown away).
    configuration.testEvaluationInterval = 0
    return configuration
  }

  /// As a lease's settings.
  public func encoded() throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(self), as: UTF8.self)
  }

  /// The specification of task `task`'s lease; one of another version, or none, is
  /// refused by name.
  public static func decode(_ settings: String, task: String) throws -> TaskSpecification {
    struct Versioned: Decodable { var version: Int? }
    let bytes = Data(settings.utf8)
    let version = (try? JSONDecoder().decode(Versioned.self, from: bytes))?.version
    guard version == currentVersion else {
      throw TaskSpecificationError(
        "task \(task): a task specification of version \(version.map(String.init) ?? "none"); this worker reads version \(currentVersion) "
          + "(run one Quorum release on the coordinator and its workers)")
    }
    do { return try JSONDecoder().decode(TaskSpecification.self, from: bytes) } catch {
      throw TaskSpecificationError("task \(task): the task specification does not decode (\(error))")
    }
  }
}

public struct TaskSpecificationError: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}
