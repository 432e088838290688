import Data
import Tensor

/// The data sets a backend holds in its own memory (a GPU's, for the whole run), and the
/// plan of each batch it assembles from them: the host still draws every shift, flip and
/// erased rectangle (`BatchAssembler.plan`, the same draws as on the host), and sends 32
/// bytes an example instead of the batch's floats; the batch is bit for bit the one the
/// host would have assembled.
///
/// Not held (the host assembles, as on the CPU): on the CPU backend; with the affine warp or
/// elastic distortion, or mixup/CutMix (they mix the host's images); when the images would
/// take more than a quarter of the free device memory.
final class HeldImages {
  let backend: Backend
  let training: Tensor
  /// Validation and test images, held where they fit: the evaluation every epoch and the
  /// final logits read them.
  let validation: Tensor?
  let test: Tensor?
  /// The batch's plan: on the host as drawn, and on the backend.
  private let planRows: UnsafeMutablePointer<Int32>
  private let plan: Tensor
  private let normalization: Tensor
  private let capacity: Int

  init?(data: TrainingData, configuration: TrainingConfiguration, assembler: BatchAssembler, backend: Backend) {
    guard BatchAssembler.canPlan(configuration.augmentation), !configuration.mixing.isActive else { return nil }
    func hold(_ dataset: ImageDataset?) -> Tensor? { dataset.flatMap { set in set.pixels.withUnsafeBufferPointer { backend.holdImages($0) } } }
    guard let training = hold(data.training) else { return nil }
    self.backend = backend
    self.training = training
    validation = hold(data.validation)
    test = hold(data.test)
    capacity = configuration.batchSize
    planRows = .allocate(capacity: 8 * capacity)
    plan = backend.makeTensor(shape: [capacity, 8])
    normalization = backend.makeTensor(shape: [assembler.normalization.count], values: assembler.normalization)
  }

  deinit { planRows.deallocate() }

  /// The held images of `dataset` if it is one of the run's data sets (the same pixel
  /// storage, so the same pixels: an array copy shares its storage until written).
  func held(_ dataset: ImageDataset, of data: TrainingData) -> Tensor? {
    func same(_ other: ImageDataset?) -> Bool {
      guard let other, other.count == dataset.count else { return false }
      return other.pixels.withUnsafeBufferPointer { a in dataset.pixels.withUnsafeBufferPointer { b in a.baseAddress == b.baseAddress } }
    }
    if same(data.validation) { return validation }
    if same(data.test) { return test }
    if same(data.training) { return training }
    return nil
  }

  /// images = the examples at `indices` of `dataset` (held as `held`), augmented as
  /// `BatchAssembler.assemble` would (or with the `fixed` transform); labels on the host.
  func assemble(
    _ dataset: ImageDataset, held: Tensor, indices: ArraySlice<Int>, augmentation: Augmentation, seed: UInt64, epoch: Int,
    assembler: BatchAssembler, labels: UnsafeMutablePointer<Int32>, images: Tensor, fixed: (dy: Int, dx: Int, flip: Bool)? = nil
  ) {
    stagePlan(dataset, indices: indices, augmentation: augmentation, seed: seed, epoch: epoch, assembler: assembler, labels: labels, fixed: fixed)
    assembleStaged(dataset, held: held, batch: indices.count, images: images)
  }

  /// The first half of `assemble`: draws the batch's plan on the host and sends it to the
  /// backend (an upload, so before a recorded step, never inside it).
  func stagePlan(
    _ dataset: ImageDataset, indices: ArraySlice<Int>, augmentation: Augmentation, seed: UInt64, epoch: Int, assembler: BatchAssembler,
    labels: UnsafeMutablePointer<Int32>, fixed: (dy: Int, dx: Int, flip: Bool)? = nil
  ) {
    precondition(indices.count <= capacity, "a batch of \(indices.count) for a plan of \(capacity)")
    assembler.plan(dataset, indices: indices, augmentation: augmentation, seed: seed, epoch: epoch, plan: planRows, labels: labels, fixed: fixed)
    backend.uploadLabels(UnsafeBufferPointer(start: planRows, count: 8 * indices.count), to: plan)
  }

  /// The second half: the backend assembles the staged plan's batch (recordable).
  func assembleStaged(_ dataset: ImageDataset, held: Tensor, batch: Int, images: Tensor) {
    backend.assembleImages(
      from: held, plan: plan, batch: batch, height: dataset.height, width: dataset.width, channels: dataset.channels,
      normalization: normalization, images: images)
  }
}
