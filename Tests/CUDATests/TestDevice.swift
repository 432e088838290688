import CUDA
import Foundation
import Tensor

/// The device the CUDA tests run on: the emulated device, or the GPU that
/// `QUORUM_TEST_DEVICE` names (`cuda:N`), so that the same parity and training tests check
/// a real GPU against the CPU backend (scripts/bench/gpu.sh runs them so).
enum TestDevice {
  static let choice: ComputeDevice = {
    let text = ProcessInfo.processInfo.environment["QUORUM_TEST_DEVICE"] ?? "cuda-emulated"
    guard let device = ComputeDevice(text), case .cuda = device else {
      preconditionFailure("QUORUM_TEST_DEVICE is cuda-emulated or cuda:N, not \(text)")
    }
    return device
  }()

  static var isEmulated: Bool { choice.isEmulated }

  /// A fresh backend on the device (a fresh emulated device, or a new stream on the GPU).
  static func backend() throws -> CUDABackend {
    guard case .cuda(let ordinal, let emulated) = choice else { preconditionFailure("one device") }
    return try emulated ? CUDABackend.emulated(ordinal) : CUDABackend.gpu(ordinal)
  }
}
