import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Small real data for training tests: the first examples of Fashion-MNIST.
enum SmallFashionMNIST {
  static func load(training: Int, test: Int) throws -> TrainingData {
    let folder = fashionMNISTFolder
    guard FileManager.default.fileExists(atPath: folder + "/train-images-idx3-ubyte.gz") else {
      throw XCTSkip("Fashion-MNIST is missing at \(folder): run scripts/setup.sh (CI does)")
    }
    let train = try ImageDataset.loadIDX(images: folder + "/train-images-idx3-ubyte.gz", labels: folder + "/train-labels-idx1-ubyte.gz")
    let testSet = try ImageDataset.loadIDX(images: folder + "/t10k-images-idx3-ubyte.gz", labels: folder + "/t10k-labels-idx1-ubyte.gz")
    let split = Split.stratifiedHoldout(labels: Array(train.labels[0..<training]), classes: 10, fraction: 0.25, seed: 1)
    let head = train.subset(Array(0..<training))
    return TrainingData(
      training: head.subset(split.training), validation: head.subset(split.validation), test: testSet.subset(Array(0..<test)))
  }

  /// A small, fast configuration that exercises every stateful feature.
  static func configuration(epochs: Int) -> TrainingConfiguration {
    var configuration = TrainingConfiguration(
      model: MobileNetV2Configuration(preset: .imagenet, width: 0.35, dropout: 0.2, stochasticDepth: 0.2))
    configuration.epochs = epochs
    configuration.batchSize = 32
    configuration.learningRate = 0.05
    configuration.emaDecay = 0.9
    configuration.gradientClipNorm = 5
    configuration.seed = 11
    return configuration
  }
}

extension MobileNetV2 {
  /// Every weight and running statistic, for bit-for-bit comparisons.
  var snapshot: [[Float]] {
    parameters.map { $0.value.array() } + norms.flatMap { [$0.runningMean.value.array(), $0.runningVariance.value.array()] }
  }
}
