import Tensor

/// Records the training step once per shape and replays it, on a backend that records
/// (a GPU: a step of MobileNetV2 is hundreds of kernel launches, replayed as one CUDA
/// graph). The replayed step is the step launched op by op, bit for bit: it is the same
/// operations on the same tensors, and what changes from step to step (the batch, the
/// learning rate, the random streams) is written to the backend before the replay and read
/// by the operations as they run (`DeviceScalar`).
///
/// A shape is what a recording fixes besides the tensors: the batch's size (an epoch's
/// batches differ by one at most, or all but a ragged last one are full), whether the
/// class weights have joined, and whether the loss reads soft targets (mixup/CutMix draw
/// that per step). So an epoch records two or three steps at most. The first step of a shape runs op by op: it makes what a backend
/// makes lazily (cuBLASLt's plans, scratch buffers), which a recording may not.
final class StepRecorder {
  struct Shape: Hashable {
    var batch: Int
    var weighted: Bool
    var softTargets: Bool
    /// A frozen-body step: the classifier's backward and update only.
    var frozenBody = false
  }

  let backend: Backend
  /// False: every step runs op by op (`quorum train --no-cuda-graphs`, a CPU backend).
  private(set) var records: Bool
  private var recordings: [Shape: RecordedOperations] = [:]
  private var warmed: Set<Shape> = []
  /// Steps replayed from a recording so far.
  private(set) var replays = 0

  init(backend: Backend, records: Bool) {
    self.backend = backend
    self.records = records
  }

  /// Runs the step `body` calls: replayed, recorded then replayed, or called op by op.
  func run(_ shape: Shape, _ body: () -> Void) {
    guard records else { return body() }
    if let recording = recordings[shape] {
      backend.replay(recording)
      replays += 1
      return
    }
    guard warmed.contains(shape) else {
      warmed.insert(shape)
      return body()
    }
    guard let recording = backend.record(body) else {
      // The backend records nothing (the CPU), or failed (what follows is skipped).
      records = false
      return body()
    }
    recordings[shape] = recording
    backend.replay(recording)
    replays += 1
  }
}
