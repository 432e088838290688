import Data
import Dispatch
import Foundation
import Tensor

/// Assembles the next batches on a background thread while the current one trains: two
/// slots, filled in order, handed over through semaphores. The batches are exactly those
/// the training thread would assemble itself (same indices, same augmentation draws), so
/// prefetching changes the speed and never the result.
final class BatchPrefetcher {
  struct Slot {
    let images: Tensor
    let labels: UnsafeMutablePointer<Int32>
  }

  private let slots: [Slot]
  private let filled = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
  private let free = [DispatchSemaphore(value: 1), DispatchSemaphore(value: 1)]
  private let assembler: BatchAssembler
  private var worker: Thread?
  private var cancelled = false
  private var done = DispatchSemaphore(value: 0)

  /// `assembler` should be single-threaded: the prefetching thread is the extra core.
  init(imageCount: Int, batchSize: Int, assembler: BatchAssembler) {
    self.assembler = assembler
    slots = (0..<2).map { _ in Slot(images: Tensor(shape: [imageCount]), labels: .allocate(capacity: batchSize)) }
  }

  deinit {
    finish()
    for slot in slots { slot.labels.deallocate() }
  }

  /// Starts assembling an epoch's batches in order.
  func start(_ dataset: ImageDataset, batches: [ArraySlice<Int>], augmentation: Augmentation, seed: UInt64, epoch: Int) {
    finish()
    cancelled = false
    done = DispatchSemaphore(value: 0)
    let thread = Thread { [unowned self] in
      for (index, batch) in batches.enumerated() {
        free[index % 2].wait()
        if cancelled { break }
        let slot = slots[index % 2]
        assembler.assemble(
          dataset, indices: batch, augmentation: augmentation, seed: seed, epoch: epoch, images: slot.images, labels: slot.labels)
        filled[index % 2].signal()
      }
      done.signal()
    }
    thread.name = "quorum-prefetch"
    worker = thread
    thread.start()
  }

  /// The slot holding batch `index` (waits until it is assembled). Call `release` when the
  /// step is done with it.
  func batch(_ index: Int) -> Slot {
    filled[index % 2].wait()
    return slots[index % 2]
  }

  func release(_ index: Int) { free[index % 2].signal() }

  /// Stops the worker (after an interrupted epoch too) and resets the slots.
  func finish() {
    guard worker != nil else { return }
    cancelled = true
    free.forEach { $0.signal() }
    done.wait()
    worker = nil
    // Back to "both slots free, none filled".
    for semaphore in filled { while semaphore.wait(timeout: .now()) == .success {} }
    for semaphore in free { while semaphore.wait(timeout: .now()) == .success {} }
    free.forEach { $0.signal() }
  }
}
