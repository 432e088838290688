import Data
import Files
import Foundation
import NN
import Tensor

/// Inference without training: a stored model on a backend with the batch assembly that
/// normalises as the model was trained (its checkpoint's statistics) and test-time
/// augmentation. No optimizer, no training buffers. What `quorum predict` and Grad-CAM's
/// fold models use; a Trainer's evaluation runs the same loop (`InferenceLoop`).
public final class Predictor {
  public let model: MobileNetV2
  public let backend: Backend
  /// The checkpoint's normalisation, as its training applied it.
  public let assembler: BatchAssembler
  let modelImages: Tensor
  let images: Tensor
  let labels: UnsafeMutablePointer<Int32>

  /// The model of checkpoint `path`, which must be of architecture `configuration`
  /// (`expected` says whose, in the error), run `batchSize` images at a time.
  public init(
    checkpoint path: String, configuration: MobileNetV2Configuration, expected: String, batchSize: Int = 256, backend: Backend,
    threads: Int
  ) throws {
    guard FileManager.default.fileExists(atPath: path) else { throw DataError(file: path, "no such checkpoint") }
    let recorded = try ModelCheckpoint.description(of: path)
    try ModelCheckpoint.requireArchitecture(recorded.configuration, of: configuration, name: path, expected: expected)
    model = try MobileNetV2(configuration, capacity: batchSize, backend: backend)
    try ModelCheckpoint.load(path, into: model)
    self.backend = backend
    assembler = BatchAssembler(mean: recorded.mean, std: recorded.std, threads: threads)
    modelImages = backend.makeTensor(shape: [batchSize, configuration.imageHeight, configuration.imageWidth, configuration.inputChannels])
    images = backend.staging(for: modelImages)
    labels = .allocate(capacity: batchSize)
  }

  deinit { labels.deallocate() }

  /// Logits [n, classes] of `dataset` (with augmentation: the log of the softmax averaged
  /// over the transforms) and their scores.
  public func predict(_ dataset: ImageDataset, testTimeAugmentation: TestTimeAugmentation = .none) throws -> (logits: [Float], metrics: ClassificationMetrics) {
    let configuration = model.configuration
    guard dataset.height == configuration.imageHeight, dataset.width == configuration.imageWidth, dataset.channels == configuration.inputChannels else {
      throw TrainingError.invalidConfiguration(
        "the images are \(dataset.height)×\(dataset.width)×\(dataset.channels), the model takes \(configuration.imageHeight)×\(configuration.imageWidth)×\(configuration.inputChannels)")
    }
    let classes = configuration.classes
    let logits = InferenceLoop.logits(
      count: dataset.count, classes: classes, batchSize: model.capacity, transforms: testTimeAugmentation.transforms, backend: backend
    ) { batch, transform in
      assembler.assemble(dataset, indices: batch, augmentation: .none, seed: 0, epoch: 0, images: images, labels: labels, fixed: transform)
      backend.commit(staging: images, to: modelImages, count: batch.count * modelImages.capacity / model.capacity)
      return model.forward(modelImages, batch: batch.count, training: false)
    }
    let metrics = logits.withUnsafeBufferPointer { ClassificationMetrics.compute(logits: $0.baseAddress!, labels: dataset.labels, classes: classes) }
    return (logits, metrics)
  }
}

/// The evaluation loop of a model in evaluation mode, shared by `Predictor` and
/// `Trainer.evaluate`: the examples in order, `batchSize` at a time, each batch once per
/// test-time transform. One transform: the logits as they come. Several: the softmax
/// averaged over them (in double precision), and its log.
enum InferenceLoop {
  /// `run(batch, transform)` assembles the batch's images with that fixed shift and flip
  /// and returns the model's output for them.
  static func logits(
    count: Int, classes: Int, batchSize: Int, transforms: [(dy: Int, dx: Int, flip: Bool)], backend: Backend,
    run: (ArraySlice<Int>, (dy: Int, dx: Int, flip: Bool)) -> Tensor
  ) -> [Float] {
    var logits = [Float](repeating: 0, count: count * classes)
    var probabilities = [Double](repeating: 0, count: transforms.count > 1 ? count * classes : 0)
    let order = Array(0..<count)
    for start in stride(from: 0, to: count, by: batchSize) {
      let batch = order[start..<min(start + batchSize, count)]
      for transform in transforms {
        let output = run(batch, transform)
        if transforms.count == 1 {
          logits.withUnsafeMutableBufferPointer {
            backend.download(output, offset: 0, into: UnsafeMutableBufferPointer(rebasing: $0[(start * classes)..<((start + batch.count) * classes)]))
          }
          continue
        }
        let rows = backend.download(output, count: batch.count * classes)
        for n in 0..<batch.count {
          let row = n * classes
          let logSum = logSumExp(count: classes) { Double(rows[row + $0]) }
          for c in 0..<classes {
            probabilities[(start + n) * classes + c] += exp(Double(rows[row + c]) - logSum) / Double(transforms.count)
          }
        }
      }
    }
    if transforms.count > 1 {
      for i in 0..<logits.count { logits[i] = Float(log(max(probabilities[i], 1e-30))) }
    }
    return logits
  }
}
