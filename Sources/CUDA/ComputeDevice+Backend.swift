import Tensor

extension ComputeDevice {
  /// The backend that computes on this device: the CPU's with `threads` threads, or the CUDA
  /// backend on a GPU or on the emulated device (its kernels compiled, or read from the
  /// CUBIN cache, as it starts). `auto` is the CPU (docs/cuda.md says why, and when that
  /// changes). Not for `cuda:all`, which is several devices: make a backend of each of
  /// `devices()` (commands that train one model refuse it, see `isSeveralDevices`).
  public func makeBackend(threads: Int) throws -> Backend {
    switch self {
    case .cpu, .automatic: return CPUBackend(threads: threads)
    case .cuda(let ordinal, let emulated): return try emulated ? CUDABackend.emulated(ordinal) : CUDABackend.gpu(ordinal)
    case .allGPUs: preconditionFailure("\(self) is several devices: make a backend of each of its devices()")
    }
  }

  /// The devices this one stands for: each GPU of `cuda:all` (`cuda:0`…`cuda:N-1`, as the
  /// driver counts them), or this device alone.
  public func devices() throws -> [ComputeDevice] {
    guard case .allGPUs(let emulated) = self else { return [self] }
    let driver = try emulated ? CUDADriverAPI.emulated() : CUDADriverAPI()
    try driver.initialise()
    return (0..<(try driver.deviceCount())).map { .cuda(ordinal: $0, emulated: emulated) }
  }

  /// Why this device cannot be used on this machine (no CUDA driver, no such GPU), or nil:
  /// what a command says before it starts, rather than at its first task.
  public func unavailability() -> String? {
    let wanted: Int?
    let emulated: Bool
    switch self {
    case .cpu, .automatic: return nil
    case .cuda(let ordinal, let isEmulated): (wanted, emulated) = (ordinal, isEmulated)
    case .allGPUs(let isEmulated): (wanted, emulated) = (nil, isEmulated)
    }
    do {
      let gpus = try (emulated ? CUDADriverAPI.emulated() : CUDADriverAPI()).gpus()
      let prefix = emulated ? "cuda-emulated" : "cuda"
      if gpus.isEmpty { return "the driver sees no GPU" }
      if let wanted, wanted >= gpus.count {
        return "no GPU \(wanted) (this machine has \(gpus.count): \(prefix):0…\(prefix):\(gpus.count - 1))"
          + (emulated ? "; QUORUM_EMULATOR_DEVICES sets how many the emulated driver shows" : "")
      }
      return nil
    } catch {
      return "\(error)"
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
