import Foundation

/// The CUDA driver API (libcuda.so.1, installed with the NVIDIA driver) through our own
/// declarations of the entry points used. Every call's status is checked in `check`.
public final class CUDADriverAPI {
  typealias Status = Int32
  public typealias Device = Int32
  public typealias Context = OpaquePointer?
  public typealias Module = OpaquePointer?

  public let library: DynamicLibrary
  private let getErrorString: @convention(c) (Status, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Status
  private let initialize: @convention(c) (UInt32) -> Status
  private let driverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
  private let deviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Status
  private let deviceGet: @convention(c) (UnsafeMutablePointer<Device>, Int32) -> Status
  private let deviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Device) -> Status
  private let deviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Device) -> Status
  private let primaryContextRetain: @convention(c) (UnsafeMutablePointer<Context>, Device) -> Status
  private let contextSetCurrent: @convention(c) (Context) -> Status
  private let moduleLoadData: @convention(c) (UnsafeMutablePointer<Module>, UnsafeRawPointer) -> Status
  private let deviceTotalMemory: @convention(c) (UnsafeMutablePointer<Int>, Device) -> Status

  static let hint = "no NVIDIA driver on this machine (in a container: the NVIDIA Container Toolkit and --gpus)"

  public convenience init(folders: [String] = DynamicLibrary.searchFolders()) throws {
    try self.init(library: DynamicLibrary.open("the CUDA driver", names: ["libcuda.so.1", "libcuda.so"], folders: folders, hint: Self.hint))
  }

  public init(library: DynamicLibrary) throws {
    self.library = library
    getErrorString = try library.function("cuGetErrorString")
    initialize = try library.function("cuInit")
    driverGetVersion = try library.function("cuDriverGetVersion")
    deviceGetCount = try library.function("cuDeviceGetCount")
    deviceGet = try library.function("cuDeviceGet")
    deviceGetName = try library.function("cuDeviceGetName")
    deviceGetAttribute = try library.function("cuDeviceGetAttribute")
    primaryContextRetain = try library.function("cuDevicePrimaryCtxRetain")
    contextSetCurrent = try library.function("cuCtxSetCurrent")
    moduleLoadData = try library.function("cuModuleLoadData")
    deviceTotalMemory = try library.function("cuDeviceTotalMem_v2")
  }

  /// Every driver status goes through here: the call's name, the driver's words, a hint.
  func check(_ status: Status, _ call: String) throws {
    guard status != 0 else { return }
    var text: UnsafePointer<CChar>?
    _ = getErrorString(status, &text)
    let hints: [Status: String] = [
      100: "the driver sees no CUDA-capable device",
      35: "the driver is older than this CUDA runtime: update the NVIDIA driver",
      209: "the kernel was compiled for another GPU architecture",
      2: "out of GPU memory: a smaller batch, or fewer members on this GPU",
    ]
    throw CUDAError.call(name: call, status: status, message: text.map { String(cString: $0) } ?? "unknown CUDA error", hint: hints[status] ?? "")
  }

  public func initialise() throws { try check(initialize(0), "cuInit") }

  /// e.g. 13000 for CUDA 13.0.
  public func driverVersion() throws -> Int {
    var version: Int32 = 0
    try check(driverGetVersion(&version), "cuDriverGetVersion")
    return Int(version)
  }

  public func deviceCount() throws -> Int {
    var count: Int32 = 0
    try check(deviceGetCount(&count), "cuDeviceGetCount")
    return Int(count)
  }

  public func device(_ ordinal: Int) throws -> Device {
    var device: Device = 0
    try check(deviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
    return device
  }

  public func name(of device: Device) throws -> String {
    var name = [CChar](repeating: 0, count: 256)
    try check(deviceGetName(&name, 256, device), "cuDeviceGetName")
    return String(cString: name)
  }

  /// "sm_90" for an H100: what NVRTC compiles for.
  public func architecture(of device: Device) throws -> String {
    var (major, minor): (Int32, Int32) = (0, 0)
    try check(deviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)")
    try check(deviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)")
    return "sm_\(major)\(minor)"
  }

  public func totalMemory(of device: Device) throws -> Int {
    var bytes = 0
    try check(deviceTotalMemory(&bytes, device), "cuDeviceTotalMem")
    return bytes
  }

  /// One GPU as the driver describes it.
  public struct GPU: Sendable {
    public var index: Int
    public var name: String
    public var memoryBytes: Int
    /// "sm_90"
    public var architecture: String
  }

  /// Every GPU the driver sees (after cuInit).
  public func gpus() throws -> [GPU] {
    try initialise()
    return try (0..<deviceCount()).map { index in
      let device = try self.device(index)
      return GPU(index: index, name: try name(of: device), memoryBytes: try totalMemory(of: device), architecture: try architecture(of: device))
    }
  }

  public func useDevice(_ device: Device) throws {
    var context: Context = nil
    try check(primaryContextRetain(&context, device), "cuDevicePrimaryCtxRetain")
    try check(contextSetCurrent(context), "cuCtxSetCurrent")
  }

  /// Loads a CUBIN into the current context.
  public func loadModule(_ cubin: [UInt8], name: String) throws -> Module {
    var module: Module = nil
    try cubin.withUnsafeBytes { try check(moduleLoadData(&module, $0.baseAddress!), "cuModuleLoadData(\(name))") }
    return module
  }
}
