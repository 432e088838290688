import AllocationCounter
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// Buffers are planned once per batch size: after the first steps (which size scratch
/// space and warm up the runtime), a training step allocates no tensor storage on any
/// thread. What remains, counted and bounded here: the closure contexts Swift boxes when
/// a parallel loop hands its body to the worker threads (`withoutActuallyEscaping`, a few
/// dozen bytes, ~150 per step), and the packing scratch OpenBLAS's small-matrix kernels
/// allocate inside sgemm on AVX-512 machines (~10 KiB, a few per step). The products run on
/// OpenBLAS here: oneDNN's sgemm, the default on x86-64, allocates and frees its packing
/// buffers inside every product (~1,800 a step at batch 16, up to 360 KiB), which would
/// hide Quorum's own allocations from the count.
final class AllocationTests: XCTestCase {
  func testTrainingStepsAllocateNoBuffers() throws {
    let data = try SmallFashionMNIST.load(training: 128, test: 8)
    var configuration = SmallFashionMNIST.configuration(epochs: 1)  // dropout, stochastic depth, EMA, clipping
    configuration.batchSize = 16
    let trainer = try Trainer(
      configuration: configuration, data: data, backend: CPUBackend(threads: 2, gemmLibrary: .openBLAS), threads: 2, outputFolder: nil,
      reporter: ProgressReporter(style: .silent, totalEpochs: 1))
    let batches = trainer.batches(epoch: 0)
    for step in 0..<2 { _ = trainer.trainStep(batches[step], epoch: 0, step: step, learningRate: 0.01) }
    quorum_allocations_start()
    var loss = 0.0
    for step in 2..<5 { loss += trainer.trainStep(batches[step], epoch: 0, step: step, learningRate: 0.01) }
    let allocations = quorum_allocations_stop()
    let bytes = quorum_allocations_bytes()
    let largest = quorum_allocations_largest()
    let tensors = quorum_allocations_aligned()
    XCTAssert(loss.isFinite)
    let summary = "\(allocations) allocations, \(bytes) bytes, largest \(largest)"
    XCTAssertEqual(tensors, 0, "64-byte-aligned (tensor) allocations in 3 steps; \(summary)")
    XCTAssertLessThan(allocations, 3 * 200, summary)
    // The model's activations at batch 16 are several MiB; everything a step allocates
    // must stay far below one activation tensor.
    XCTAssertLessThan(bytes, 3 * 64 * 1024, summary)
    // The counter does count: an array allocates.
    quorum_allocations_start()
    let array = [Int](repeating: 1, count: Int(loss.isFinite ? 1000 : 1))
    XCTAssertGreaterThan(quorum_allocations_stop(), 0)
    XCTAssertEqual(array.count, 1000)
  }
}
