import Tensor

extension ComputeDevice {
  /// The backend that computes on this device: the CPU's with `threads` threads, or the CUDA
  /// backend on the emulated device or on a GPU (its kernels compiled, or read from the
  /// CUBIN cache, as it starts). `auto` is the CPU (docs/cuda.md says why, and when that
  /// changes).
  public func makeBackend(threads: Int) throws -> Backend {
    switch self {
    case .cpu, .automatic: return CPUBackend(threads: threads)
    case .cudaEmulated: return try CUDABackend.emulated()
    case .cuda(let ordinal): return try CUDABackend.gpu(ordinal)
    }
  }
}

extension CUDABackend {
  /// The CUDA backend on GPU `ordinal` through the machine's driver, NVRTC and cuBLASLt.
  public static func gpu(_ ordinal: Int) throws -> CUDABackend {
    let driver = try CUDADriverAPI()
    try driver.initialise()
    let count = try driver.deviceCount()
    guard ordinal < count else {
      throw CUDAError.call(
        name: "cuda:\(ordinal)", status: 101, message: "no such GPU",
        hint: count == 0 ? "the driver sees no GPU" : "this machine has \(count) (cuda:0…cuda:\(count - 1))")
    }
    let device = try CUDADevice(driver: driver, compiler: KernelCompiler(nvrtc: try NVRTC()), ordinal: ordinal)
    return CUDABackend(operations: DeviceOperations(device: device, blas: try CUBLASLt()))
  }
}

extension ComputeDevice {
  /// Why this device cannot be used on this machine (no CUDA driver, no such GPU), or nil:
  /// what a command says before it starts, rather than at its first task.
  public func unavailability() -> String? {
    guard case .cuda(let ordinal) = self else { return nil }
    do {
      let gpus = try CUDADriverAPI().gpus()
      guard ordinal < gpus.count else {
        return gpus.isEmpty ? "the driver sees no GPU" : "no GPU \(ordinal) (this machine has \(gpus.count): cuda:0…cuda:\(gpus.count - 1))"
      }
      return nil
    } catch {
      return "\(error)"
    }
  }
}
