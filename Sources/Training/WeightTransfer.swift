import Data
import Files
import Foundation
import NN
import Tensor

/// Starting a model from another model's weights, for fine-tuning: a Quorum checkpoint of
/// any class count or input channels, or torchvision's `mobilenet_v2` state dict saved as
/// safetensors (the ImageNet weights a user downloads: 3 channels, 1000 classes; Quorum's
/// tensor names and layouts are torchvision's).
///
/// - The classifier is left as initialised (new) when the class count differs.
/// - The stem is adapted when the input channels differ, as timm's `adapt_input_conv`: to 1
///   channel by summing over the colour axis (a grey image then gives the colour model's
///   response to that image in every channel); to more by repeating the channels and
///   scaling by the ratio, which keeps the response to a grey image.
/// - Any other tensor whose shape differs (another width) or that the file lacks is
///   refused, naming the tensor and both shapes; a Quorum checkpoint of other strides
///   (the other preset) is refused, naming them.
public enum WeightTransfer {
  /// What the loading did, for the user to read.
  public struct Report: Equatable, Sendable {
    /// Tensors loaded as they were.
    public var taken: [String] = []
    /// The stem's weight, adapted from the file's input channels to the model's.
    public var adapted: [String] = []
    /// Tensors left as initialised (the classifier of another class count).
    public var new: [String] = []
    /// Tensors of the file that the model has no place for.
    public var dropped: [String] = []

    /// One line: "took 312 tensors, adapted features.0.0.weight (3 → 1 channels), new …".
    public var summary: String {
      var parts = ["took \(taken.count) tensors"]
      if !adapted.isEmpty { parts.append("adapted " + adapted.joined(separator: ", ")) }
      if !new.isEmpty { parts.append("new (initialised afresh) " + new.joined(separator: ", ")) }
      if !dropped.isEmpty { parts.append("dropped " + dropped.joined(separator: ", ")) }
      return parts.joined(separator: "; ")
    }
  }

  static let classifierNames: Set = ["classifier.1.weight", "classifier.1.bias"]
  static let stemName = "features.0.0.weight"

  /// `newClassifier`: leave the classifier as initialised even where the file's has the
  /// same shape (other classes of the same count: a head for other labels is no start).
  public static func load(_ path: String, into model: MobileNetV2, newClassifier: Bool = false) throws -> Report {
    try load(try Safetensors.read(path), into: model, newClassifier: newClassifier)
  }

  public static func load(_ file: Safetensors, into model: MobileNetV2, newClassifier: Bool = false) throws -> Report {
    let path = file.path
    let wanted = model.configuration
    var widths = "another width"
    if file.metadata["format"] == "quorum.mobilenet_v2" {
      let recorded = try ModelCheckpoint.description(file.metadata, path: path).configuration
      widths = "width \(recorded.width) there, \(wanted.width) here"
      guard recorded.stemStride == wanted.stemStride, recorded.stageStrides == wanted.stageStrides else {
        throw DataError(file: path, "is a model of stem stride \(recorded.stemStride) and stage strides \(recorded.stageStrides); this model has \(wanted.stemStride) and \(wanted.stageStrides): give the same preset (or stage_strides)")
      }
    }
    var report = Report()
    // The file's tensors this model has a place for (taken, adapted or superseded).
    var placed = Set<String>()
    var planned: [(Parameter, [Float])] = []
    for parameter in model.parameters {
      let name = parameter.name
      let expected = parameter.checkpointShape
      placed.insert(name)
      guard let entry = file.entry(name) else {
        if classifierNames.contains(name) { report.new.append(name); continue }
        throw DataError(file: path, "has no tensor \"\(name)\": not a MobileNetV2 checkpoint or state dict")
      }
      if newClassifier, classifierNames.contains(name) {
        report.new.append(name + " (asked for)")
      } else if entry.shape == expected {
        planned.append((parameter, try finite(try file.floats(name, shape: expected), name, path)))
        report.taken.append(name)
      } else if classifierNames.contains(name), entry.shape.count == expected.count, entry.shape.dropFirst() == expected.dropFirst() {
        report.new.append(name + " (\(entry.shape[0]) classes in the file, \(expected[0]) here)")
      } else if name == stemName, entry.shape.count == 4, entry.shape[0] == expected[0], Array(entry.shape[2...]) == Array(expected[2...]) {
        let values = try finite(try file.floats(name, shape: entry.shape), name, path)
        planned.append((parameter, adaptInputChannels(values, outputs: expected[0], from: entry.shape[1], to: expected[1])))
        report.adapted.append(name + " (\(entry.shape[1]) → \(expected[1]) input channels)")
      } else {
        throw DataError(
          file: path,
          "tensor \"\(name)\" is \(entry.shape) there and \(expected) in this model: a model of \(widths) (or another architecture); give the width it was trained with")
      }
    }
    var buffers: [(Buffer, [Float])] = []
    var counts: [(BatchNormalization, Int64)] = []
    for norm in model.norms {
      for buffer in [norm.runningMean, norm.runningVariance] {
        guard let entry = file.entry(buffer.name) else { throw DataError(file: path, "has no tensor \"\(buffer.name)\"") }
        guard entry.shape == [norm.channels] else {
          throw DataError(file: path, "tensor \"\(buffer.name)\" is \(entry.shape) there and [\(norm.channels)] in this model: a model of another width")
        }
        buffers.append((buffer, try finite(try file.floats(buffer.name, shape: [norm.channels]), buffer.name, path)))
        report.taken.append(buffer.name)
      }
      let tracked = norm.prefix + ".num_batches_tracked"
      if file.entry(tracked) != nil {
        counts.append((norm, try file.int64(tracked)))
        report.taken.append(tracked)
      }
    }
    report.dropped = file.entries.map(\.name).filter { !placed.contains($0) && !report.taken.contains($0) }
    // Everything checked: only now is the model changed.
    for (parameter, values) in planned { model.backend.upload(ModelCheckpoint.fromCheckpointLayout(values, of: parameter), to: parameter.value) }
    for (buffer, values) in buffers { model.backend.upload(values, to: buffer.value) }
    for (norm, count) in counts { norm.batchesTracked = count }
    return report
  }

  /// A [outputs, from, 3, 3] convolution's weight as [outputs, to, 3, 3] (PyTorch layout).
  static func adaptInputChannels(_ values: [Float], outputs: Int, from: Int, to: Int) -> [Float] {
    let kernel = values.count / (outputs * from)
    var result = [Float](repeating: 0, count: outputs * to * kernel)
    for o in 0..<outputs {
      for c in 0..<to {
        for k in 0..<kernel {
          if to == 1 {
            var sum: Float = 0
            for source in 0..<from { sum += values[(o * from + source) * kernel + k] }
            result[(o * to + c) * kernel + k] = sum
          } else {
            result[(o * to + c) * kernel + k] = values[(o * from + c % from) * kernel + k] * Float(from) / Float(to)
          }
        }
      }
    }
    return result
  }

  static func finite(_ values: [Float], _ name: String, _ path: String) throws -> [Float] {
    guard values.allSatisfy(\.isFinite) else {
      throw DataError(file: path, "tensor \"\(name)\" holds NaN or infinite values: the model diverged or the file is damaged")
    }
    return values
  }
}
