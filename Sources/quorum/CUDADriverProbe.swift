import Foundation

/// What the CUDA driver says about this machine, asked through `libcuda.so.1` loaded at run
/// time (nothing CUDA is linked). Used by `quorum doctor` and `--device auto`.
struct CUDADriverProbe {
  struct Device {
    var index: Int
    var name: String
    var memoryBytes: Int
  }

  /// The driver's version (e.g. 12080 for 12.8), or nil with the reason.
  var driverVersion: Int?
  var devices: [Device] = []
  var problem: String?

  static func run() -> CUDADriverProbe {
    guard let library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) else {
      return CUDADriverProbe(driverVersion: nil, problem: "libcuda.so.1 not found: no NVIDIA driver on this machine (or, in a container, no NVIDIA Container Toolkit: run with --gpus)")
    }
    typealias IntFunction = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias Init = @convention(c) (UInt32) -> Int32
    typealias DeviceGet = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias DeviceName = @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
    typealias DeviceMemory = @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Int32
    func symbol<T>(_ name: String, as type: T.Type) -> T? {
      dlsym(library, name).map { unsafeBitCast($0, to: type) }
    }
    guard let cuInit = symbol("cuInit", as: Init.self), let cuDriverGetVersion = symbol("cuDriverGetVersion", as: IntFunction.self),
      let cuDeviceGetCount = symbol("cuDeviceGetCount", as: IntFunction.self), let cuDeviceGet = symbol("cuDeviceGet", as: DeviceGet.self),
      let cuDeviceGetName = symbol("cuDeviceGetName", as: DeviceName.self),
      let cuDeviceTotalMem = symbol("cuDeviceTotalMem_v2", as: DeviceMemory.self)
    else {
      return CUDADriverProbe(driverVersion: nil, problem: "libcuda.so.1 lacks the driver API entry points (cuInit, cuDeviceTotalMem_v2, …): a driver older than CUDA 3.2?")
    }
    var version: Int32 = 0
    _ = cuDriverGetVersion(&version)
    let status = cuInit(0)
    guard status == 0 else {
      return CUDADriverProbe(driverVersion: Int(version), problem: "cuInit failed with CUDA error \(status)\(status == 100 ? " (no CUDA-capable device)" : "")")
    }
    var count: Int32 = 0
    _ = cuDeviceGetCount(&count)
    var devices: [Device] = []
    for index in 0..<count {
      var device: Int32 = 0
      guard cuDeviceGet(&device, index) == 0 else { continue }
      var name = [CChar](repeating: 0, count: 256)
      _ = cuDeviceGetName(&name, 256, device)
      var memory = 0
      _ = cuDeviceTotalMem(&memory, device)
      devices.append(Device(index: Int(index), name: String(cString: name), memoryBytes: memory))
    }
    return CUDADriverProbe(driverVersion: Int(version), devices: devices, problem: devices.isEmpty ? "the driver sees no GPU" : nil)
  }
}
