import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// The whole MobileNetV2, forward and backward, against PyTorch's float64 autograd on
/// torchvision's mobilenet_v2 with the same weights (Fixtures/make_pytorch_parity.py).
/// This checks our gradients, our layouts (weights load from a torchvision state_dict)
/// and our semantics (batch norm, ReLU6, label smoothing) all at once.
final class PyTorchParityTests: XCTestCase {
  func fixture() throws -> Safetensors {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "pytorch_parity", withExtension: "safetensors", subdirectory: "Fixtures"))
    return try Safetensors.read(url.path)
  }

  static let batch = 6

  /// The fixture's network (cifar preset, width 0.35, 2 input channels, 4 classes, 12×12)
  /// with its weights, and its batch.
  func fixtureModel(_ file: Safetensors, dropout: Float = 0, stochasticDepth: Float = 0, threads: Int = 2) throws -> (MobileNetV2, Tensor, [Int32]) {
    let configuration = MobileNetV2Configuration(
      preset: .cifar, width: 0.35, inputChannels: 2, classes: 4, imageHeight: 12, imageWidth: 12, dropout: dropout,
      stochasticDepth: stochasticDepth)
    let model = try MobileNetV2(configuration, capacity: Self.batch, backend: CPUBackend(threads: threads))
    try ModelCheckpoint.load(model, from: file, prefix: "weights/")
    let images = Tensor(shape: [Self.batch, 12, 12, 2], values: try file.floats("input"))
    return (model, images, try file.floats("labels").map { Int32($0) })
  }

  /// One training step's results: logits, loss, every parameter's gradient (checkpoint
  /// layout) and the input gradient.
  struct Step {
    var logits: [Float]
    var loss: Float
    var gradients: [[Float]]
    var inputGradient: [Float]
  }

  /// One training step (forward at `seed`, `step`; label-smoothed cross-entropy; backward).
  func trainingStep(_ model: MobileNetV2, images: Tensor, labels: [Int32], seed: UInt64, step: UInt64) -> Step {
    let batch = Self.batch
    let logits = model.forward(images, batch: batch, training: true, seed: seed, step: step)
    let backend = model.backend
    let logitGradient = backend.makeTensor(shape: [batch, 4])
    let (labelTensor, loss) = (backend.makeTensor(shape: [batch]), backend.makeTensor(shape: [1]))
    labels.withUnsafeBufferPointer { backend.uploadLabels($0, to: labelTensor) }
    backend.softmaxCrossEntropy(
      logits: logits, labels: labelTensor, batch: batch, classes: 4, options: CrossEntropyOptions(labelSmoothing: 0.1, classWeights: nil),
      logitGradient: logitGradient, loss: loss)
    let logitValues = backend.download(logits, count: batch * 4)
    let inputGradient = Tensor(shape: [images.capacity])
    model.backward(logitGradient: logitGradient, batch: batch, inputGradient: inputGradient)
    return Step(
      logits: logitValues, loss: backend.download(loss)[0],
      gradients: model.parameters.map { ModelCheckpoint.toCheckpointLayout(backend.download($0.gradient), of: $0) },
      inputGradient: inputGradient.array())
  }

  /// One training step against the fixture's `prefix`train_logits, `lossKey`,
  /// `prefix`gradients/ and `prefix`input_gradient.
  ///
  /// The step sits on ReLU6 kinks: in the float64 reference, some ReLU6 inputs lie within
  /// 1e-6 of 0 (measured: 1.0e-6, 2.6e-6, 2.7e-6, … over the 70 ReLU6 layers of the two
  /// passes), closer than float32's rounding. Such a gate opens or closes with the
  /// summation order, and a flipped gate moves a channel's gradient by one row of a few
  /// dozen: the CPU backend with 1, 2 and 3 threads disagree with each other on some
  /// gradients by up to 6 % (seen on an AMD EPYC; on an Intel Xeon the orders happened to
  /// land on the reference's side). So each tensor may differ from the reference by 2e-3
  /// of its scale plus four times the spread of the three orders: a wrong formula or mask
  /// moves every order alike and still fails; what float32 itself decides is not charged
  /// to the code. (No fixture of this kind avoids the kinks: of its 1,104,000 ReLU6 inputs,
  /// 92 lie within 1e-4 of one.)
  func assertTrainingStep(
    _ make: (Int) throws -> (MobileNetV2, Tensor, [Int32]), file: Safetensors, prefix: String, lossKey: String,
    seed: UInt64 = 0, step: UInt64 = 0
  ) throws -> MobileNetV2 {
    var model: MobileNetV2!
    var steps: [Step] = []
    for threads in [2, 1, 3] {
      let (made, images, labels) = try make(threads)
      if threads == 2 { model = made }
      steps.append(trainingStep(made, images: images, labels: labels, seed: seed, step: step))
    }
    let ours = steps[0]
    func spread(_ values: (Step) -> [Float]) -> Float {
      4 * steps.dropFirst().map { other in zip(values(ours), values(other)).map { abs($0 - $1) }.max() ?? 0 }.max()!
    }
    assertClose(ours.logits, try file.floats(prefix + "train_logits"), tolerance: 1e-4, prefix + "train logits")
    XCTAssertEqual(Double(ours.loss), Double(try XCTUnwrap(file.metadata[lossKey]))!, accuracy: 1e-4, lossKey)
    let gradientScale = try model.parameters.map { try file.floats(prefix + "gradients/" + $0.name).map(abs).max() ?? 0 }.max() ?? 0
    for (index, parameter) in model.parameters.enumerated() {
      let reference = try file.floats(prefix + "gradients/" + parameter.name, shape: parameter.checkpointShape)
      assertClose(
        ours.gradients[index], reference, tolerance: 2e-3, floor: 1e-3 * gradientScale, rounding: spread { $0.gradients[index] },
        prefix + parameter.name)
    }
    assertClose(
      ours.inputGradient, try file.floats(prefix + "input_gradient"), tolerance: 2e-3, rounding: spread(\.inputGradient),
      prefix + "input gradient")
    return model
  }

  func testForwardAndBackwardMatchPyTorchFloat64() throws {
    let file = try fixture()
    let (evaluated, images, _) = try fixtureModel(file)
    let evaluation = evaluated.forward(images, batch: Self.batch, training: false)
    assertClose(evaluation.array(count: Self.batch * 4), try file.floats("eval_logits"), tolerance: 1e-4, "eval logits")

    let model = try assertTrainingStep({ try fixtureModel(file, threads: $0) }, file: file, prefix: "", lossKey: "loss")
    // The training forward moved the running statistics as PyTorch does (the backward
    // pass leaves them alone).
    for norm in model.norms {
      for buffer in [norm.runningMean, norm.runningVariance] {
        assertClose(buffer.value.array(), try file.floats("updated/" + buffer.name), tolerance: 1e-4, buffer.name)
      }
      XCTAssertEqual(norm.batchesTracked, try file.int64("weights/" + norm.prefix + ".num_batches_tracked") + 1)
    }
  }

  /// The same training step with Noisy Student's noise on (dropout before the classifier,
  /// stochastic depth on the residual branches): the fixture drew Quorum's masks from the
  /// same Philox streams at (seed 21, step 34), so logits, loss and every gradient must
  /// match PyTorch's float64 autograd of the masked network.
  func testNoisyTrainingStepMatchesPyTorchWithTheSameMasks() throws {
    let file = try fixture()
    let metadata = file.metadata
    XCTAssertGreaterThan(Int(metadata["noisy_dropped_branches"] ?? "") ?? 0, 0, "the fixture dropped no branch")
    let (dropout, depth) = (Float(try XCTUnwrap(metadata["noisy_dropout"]))!, Float(try XCTUnwrap(metadata["noisy_stochastic_depth"]))!)
    _ = try assertTrainingStep(
      { try fixtureModel(file, dropout: dropout, stochasticDepth: depth, threads: $0) }, file: file, prefix: "noisy/", lossKey: "noisy_loss",
      seed: UInt64(try XCTUnwrap(metadata["noisy_seed"]))!, step: UInt64(try XCTUnwrap(metadata["noisy_step"]))!)
  }
}
