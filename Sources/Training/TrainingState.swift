import Data
import Files
import Foundation
import NN

/// What a run has done so far, saved after every epoch in `state.safetensors` beside the
/// weights, optimizer and EMA tensors, so that `--resume` continues bit-exactly.
public struct TrainingProgress: Codable, Equatable, Sendable {
  /// Epochs completed.
  public var epoch = 0
  /// Optimizer steps taken.
  public var step = 0
  public var plateau = PlateauState()
  public var bestScore: Double?
  public var bestEpoch: Int?
  public var epochsWithoutImprovement = 0
  public var history: [EpochRecord] = []
  public var stoppedEarly = false

  public init() {}
}

/// One epoch's log line, as written to metrics.json.
public struct EpochRecord: Codable, Equatable, Sendable {
  public var epoch: Int
  public var trainingLoss: Double
  public var learningRate: Double
  public var imagesPerSecond: Double
  public var seconds: Double
  public var validation: ClassificationMetrics?
  public var test: ClassificationMetrics?

  enum CodingKeys: String, CodingKey {
    case epoch, trainingLoss = "training_loss", learningRate = "learning_rate"
    case imagesPerSecond = "images_per_second", seconds, validation, test
  }
}

enum TrainingStateFile {
  static let modelPrefix = "model/"

  static func save(
    to path: String, configuration: TrainingConfiguration, progress: TrainingProgress, model: MobileNetV2,
    optimizer: Optimizer, average: ExponentialMovingAverage?
  ) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var counters = optimizer.counters
    counters["format_version"] = 1
    var file = Safetensors(metadata: [
      "format": "quorum.training_state",
      "configuration": String(decoding: try encoder.encode(configuration), as: UTF8.self),
      "progress": String(decoding: try encoder.encode(progress), as: UTF8.self),
      "counters": String(decoding: try encoder.encode(counters), as: UTF8.self),
    ])
    ModelCheckpoint.append(model, to: &file, prefix: modelPrefix)
    for (name, tensor) in optimizer.state + (average?.state ?? []) {
      model.backend.download(tensor).withUnsafeBufferPointer {
        file.append("optimizer/" + name, shape: [tensor.capacity], floats: $0.baseAddress!)
      }
    }
    try file.write(to: path)
  }

  /// Restores everything and returns the progress; the configuration must equal the one
  /// the state was saved with, except for a larger epoch count.
  static func load(
    from path: String, configuration: TrainingConfiguration, model: MobileNetV2, optimizer: Optimizer,
    average: ExponentialMovingAverage?, trainedParameters: (_ epoch: Int) -> [Parameter]
  ) throws -> TrainingProgress {
    let file = try Safetensors.read(path)
    let decoder = JSONDecoder()
    guard file.metadata["format"] == "quorum.training_state",
      let configurationText = file.metadata["configuration"], let progressText = file.metadata["progress"],
      let countersText = file.metadata["counters"]
    else { throw DataError(file: path, "not a Quorum training state (metadata missing)") }
    var saved = try decoder.decode(TrainingConfiguration.self, from: Data(configurationText.utf8))
    saved.epochs = configuration.epochs
    guard saved == configuration else {
      throw TrainingError.resumeMismatch(file: path, "it was saved with other settings; resume with the same flags (only --epochs may change)")
    }
    try ModelCheckpoint.load(model, from: file, prefix: modelPrefix)
    let progress = try decoder.decode(TrainingProgress.self, from: Data(progressText.utf8))
    // The state of every parameter trained so far (a frozen body's is not in the file),
    // which is the state of the parameters the next epoch trains; the first epoch with a
    // body trained after a frozen one allocates the body's afresh, as it would have.
    optimizer.allocateState(for: trainedParameters(max(progress.epoch - 1, 0)))
    for (name, tensor) in optimizer.state + (average?.state ?? []) {
      model.backend.upload(try file.floats("optimizer/" + name, shape: [tensor.capacity]), to: tensor)
    }
    optimizer.counters = try decoder.decode([String: Int].self, from: Data(countersText.utf8))
    return progress
  }
}
