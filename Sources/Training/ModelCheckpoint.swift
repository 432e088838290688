import Data
import Files
import Foundation
import NN
import Tensor

/// Model weights as safetensors with torchvision's `mobilenet_v2` names and layouts, so
/// `model.load_state_dict(safetensors.torch.load_file(path))` works in PyTorch.
public enum ModelCheckpoint {
  /// What the file records besides the tensors: enough to rebuild the model and feed it.
  public struct Description: Equatable {
    public var configuration: MobileNetV2Configuration
    public var mean: [Float]
    public var std: [Float]

    public init(configuration: MobileNetV2Configuration, mean: [Float], std: [Float]) {
      self.configuration = configuration
      self.mean = mean
      self.std = std
    }
  }

  /// Adds the model's tensors in state_dict order under `prefix`.
  static func append(_ model: MobileNetV2, to file: inout Safetensors, prefix: String = "") {
    let normsByShift = Dictionary(uniqueKeysWithValues: model.norms.map { ($0.prefix + ".bias", $0) })
    let backend = model.backend
    for parameter in model.parameters {
      let values = toCheckpointLayout(backend.download(parameter.value), of: parameter)
      values.withUnsafeBufferPointer { file.append(prefix + parameter.name, shape: parameter.checkpointShape, floats: $0.baseAddress!) }
      if let norm = normsByShift[parameter.name] {
        for buffer in [norm.runningMean, norm.runningVariance] {
          backend.download(buffer.value, count: norm.channels).withUnsafeBufferPointer {
            file.append(prefix + buffer.name, shape: [norm.channels], floats: $0.baseAddress!)
          }
        }
        file.append(prefix + norm.prefix + ".num_batches_tracked", int64: norm.batchesTracked)
      }
    }
  }

  /// Loads every tensor of the model from `file` (under `prefix`), checking names and shapes.
  public static func load(_ model: MobileNetV2, from file: Safetensors, prefix: String = "") throws {
    let expected = Set(model.parameters.map { prefix + $0.name }
      + model.norms.flatMap { [prefix + $0.runningMean.name, prefix + $0.runningVariance.name, prefix + $0.prefix + ".num_batches_tracked"] })
    let present = Set(file.entries.map(\.name).filter { prefix.isEmpty || $0.hasPrefix(prefix) })
    if let missing = expected.subtracting(present).sorted().first {
      throw DataError(file: file.path, "has no tensor \"\(missing)\" (\(expected.subtracting(present).count) missing): not a checkpoint of this model")
    }
    if prefix.isEmpty, let unexpected = present.subtracting(expected).sorted().first {
      throw DataError(file: file.path, "has tensor \"\(unexpected)\" that this model does not have: a checkpoint of another architecture")
    }
    // A NaN weight predicts class 0 for everything without a word: refused where it is read.
    func finite(_ values: [Float], _ name: String) throws -> [Float] {
      guard values.allSatisfy(\.isFinite) else {
        throw DataError(file: file.path, "tensor \"\(name)\" holds NaN or infinite values: the model diverged or the file is damaged; retrain this member")
      }
      return values
    }
    for parameter in model.parameters {
      let values = try finite(try file.floats(prefix + parameter.name, shape: parameter.checkpointShape), prefix + parameter.name)
      model.backend.upload(fromCheckpointLayout(values, of: parameter), to: parameter.value)
    }
    for norm in model.norms {
      for buffer in [norm.runningMean, norm.runningVariance] {
        model.backend.upload(try finite(try file.floats(prefix + buffer.name, shape: [norm.channels]), prefix + buffer.name), to: buffer.value)
      }
      norm.batchesTracked = try file.int64(prefix + norm.prefix + ".num_batches_tracked")
    }
  }

  public static func save(_ model: MobileNetV2, description: Description, to path: String) throws {
    try FileBytes.writeAtomically(try encoded(model, description: description), to: path)
  }

  /// The checkpoint file's bytes (what a worker sends with its result).
  public static func encoded(_ model: MobileNetV2, description: Description) throws -> [UInt8] {
    var file = Safetensors(metadata: metadata(description))
    append(model, to: &file)
    return try file.encoded()
  }

  /// Loads weights into an existing model.
  public static func load(_ path: String, into model: MobileNetV2) throws {
    try load(model, from: try Safetensors.read(path))
  }

  /// Refuses a checkpoint whose recorded model is another architecture than
  /// `configuration`; the regularisation (dropout, stochastic depth) does not shape a
  /// tensor, so it may differ. `expected` names whose model it should be.
  public static func requireArchitecture(
    _ recorded: MobileNetV2Configuration, of configuration: MobileNetV2Configuration, name: String, expected: String
  ) throws {
    var recorded = recorded
    (recorded.dropout, recorded.stochasticDepth) = (configuration.dropout, configuration.stochasticDepth)
    guard recorded != configuration else { return }
    func summary(_ c: MobileNetV2Configuration) -> String {
      "width \(c.width), \(c.inputChannels)-channel \(c.imageHeight)×\(c.imageWidth) images, \(c.classes) classes, strides \(c.stemStride) \(c.stageStrides)"
    }
    throw DataError(file: name, "is a checkpoint of a model of \(summary(recorded)); \(expected) has \(summary(configuration))")
  }

  /// Checks that `bytes` are a checkpoint of a model of `configuration` (its recorded
  /// description, every tensor's name and shape), by loading them into a fresh model; the
  /// coordinator's check of a worker's checkpoint before it is stored. `name` names them
  /// in the error.
  public static func check(_ bytes: [UInt8], name: String, configuration: MobileNetV2Configuration) throws {
    let file = try Safetensors.parse(bytes, path: name)
    try requireArchitecture(try description(file.metadata, path: name).configuration, of: configuration, name: name, expected: "the task's")
    try load(try MobileNetV2(configuration, capacity: 1, backend: CPUBackend(threads: 1), inferenceOnly: true), from: file)
  }

  /// The size of a checkpoint of a model of `configuration`, but for the few bytes of its
  /// description: the bound a task's checkpoint is held to before it is decoded.
  public static func size(of configuration: MobileNetV2Configuration) throws -> Int {
    let model = try MobileNetV2(configuration, capacity: 1, backend: CPUBackend(threads: 1), inferenceOnly: true)
    let channels = configuration.inputChannels
    return try encoded(model, description: Description(
      configuration: configuration, mean: [Float](repeating: 0, count: channels), std: [Float](repeating: 1, count: channels))).count
  }

  /// Reads the description recorded in a checkpoint.
  public static func description(of path: String) throws -> Description {
    let file = try Safetensors.read(path)
    return try description(file.metadata, path: path)
  }

  static func metadata(_ description: Description) -> [String: String] {
    let c = description.configuration
    func list<T>(_ values: [T]) -> String { values.map { "\($0)" }.joined(separator: ",") }
    return [
      "format": "quorum.mobilenet_v2", "width": "\(c.width)", "input_channels": "\(c.inputChannels)",
      "classes": "\(c.classes)", "stem_stride": "\(c.stemStride)", "stage_strides": list(c.stageStrides),
      "dropout": "\(c.dropout)", "stochastic_depth": "\(c.stochasticDepth)",
      "image_height": "\(c.imageHeight)", "image_width": "\(c.imageWidth)",
      "mean": list(description.mean), "std": list(description.std),
    ]
  }

  static func description(_ metadata: [String: String], path: String) throws -> Description {
    func value(_ key: String) throws -> String {
      guard let text = metadata[key] else { throw DataError(file: path, "metadata has no \"\(key)\": not a Quorum model checkpoint") }
      return text
    }
    func number<T: LosslessStringConvertible>(_ key: String) throws -> T {
      guard let parsed = T(try value(key)) else { throw DataError(file: path, "metadata \"\(key)\" is not a number: \(try value(key))") }
      return parsed
    }
    func numbers<T: LosslessStringConvertible>(_ key: String) throws -> [T] {
      try value(key).split(separator: ",").map {
        guard let parsed = T(String($0)) else { throw DataError(file: path, "metadata \"\(key)\" has a bad value \($0)") }
        return parsed
      }
    }
    let configuration = MobileNetV2Configuration(
      width: try number("width"), inputChannels: try number("input_channels"), classes: try number("classes"),
      imageHeight: try number("image_height"), imageWidth: try number("image_width"),
      stemStride: try number("stem_stride"), stageStrides: try numbers("stage_strides"),
      dropout: try number("dropout"), stochasticDepth: (try? number("stochastic_depth")) ?? 0)
    return Description(configuration: configuration, mean: try numbers("mean"), std: try numbers("std"))
  }

  /// Reorders values stored like `parameter` (its value or its gradient) into PyTorch's layout.
  public static func toCheckpointLayout(_ source: [Float], of parameter: Parameter) -> [Float] {
    var result = [Float](repeating: 0, count: parameter.count)
    switch parameter.layout {
    case .identity:
      for i in 0..<parameter.count { result[i] = source[i] }
    case .depthwise:  // [3, 3, C] → [C, 1, 3, 3]
      let channels = parameter.count / 9
      for k in 0..<9 { for c in 0..<channels { result[c * 9 + k] = source[k * channels + c] } }
    case .convolution3x3:  // [Cout, 3, 3, Cin] → [Cout, Cin, 3, 3]
      let (outputs, inputs) = (parameter.checkpointShape[0], parameter.checkpointShape[1])
      for o in 0..<outputs { for k in 0..<9 { for i in 0..<inputs {
        result[(o * inputs + i) * 9 + k] = source[(o * 9 + k) * inputs + i]
      } } }
    }
    return result
  }

  /// Reorders values in PyTorch's layout into the way `parameter` stores them.
  static func fromCheckpointLayout(_ values: [Float], of parameter: Parameter) -> [Float] {
    var destination = [Float](repeating: 0, count: parameter.count)
    switch parameter.layout {
    case .identity:
      for i in 0..<parameter.count { destination[i] = values[i] }
    case .depthwise:
      let channels = parameter.count / 9
      for k in 0..<9 { for c in 0..<channels { destination[k * channels + c] = values[c * 9 + k] } }
    case .convolution3x3:
      let (outputs, inputs) = (parameter.checkpointShape[0], parameter.checkpointShape[1])
      for o in 0..<outputs { for k in 0..<9 { for i in 0..<inputs {
        destination[(o * 9 + k) * inputs + i] = values[(o * inputs + i) * 9 + k]
      } } }
    }
    return destination
  }
}
