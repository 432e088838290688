import Foundation

/// The CUDA driver API (libcuda.so.1, installed with the NVIDIA driver) through our own
/// declarations of the entry points used. Every call's status is checked in `check`.
public final class CUDADriverAPI {
  typealias Status = Int32
  public typealias Device = Int32
  public typealias Context = OpaquePointer?
  public typealias Module = OpaquePointer?
  public typealias Function = OpaquePointer?
  public typealias Stream = OpaquePointer?
  public typealias Event = OpaquePointer?
  /// A captured graph (CUgraph) and an instantiated one (CUgraphExec).
  public typealias Graph = OpaquePointer?
  public typealias GraphExec = OpaquePointer?
  /// A device address (CUdeviceptr).
  public typealias Address = UInt64

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
  private let contextGetCurrent: @convention(c) (UnsafeMutablePointer<Context>) -> Status
  private let moduleLoadData: @convention(c) (UnsafeMutablePointer<Module>, UnsafeRawPointer) -> Status
  private let deviceTotalMemory: @convention(c) (UnsafeMutablePointer<Int>, Device) -> Status
  private let moduleGetFunction: @convention(c) (UnsafeMutablePointer<Function>, Module, UnsafePointer<CChar>) -> Status
  private let launchKernel: @convention(c) (
    Function, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, Stream, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    UnsafeMutablePointer<UnsafeMutableRawPointer?>?
  ) -> Status
  private let memoryAllocate: @convention(c) (UnsafeMutablePointer<Address>, Int) -> Status
  private let memoryFree: @convention(c) (Address) -> Status
  private let memoryInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Status
  private let copyHostToDevice: @convention(c) (Address, UnsafeRawPointer, Int, Stream) -> Status
  private let copyDeviceToHost: @convention(c) (UnsafeMutableRawPointer, Address, Int, Stream) -> Status
  private let copyDeviceToDevice: @convention(c) (Address, Address, Int, Stream) -> Status
  private let memset32: @convention(c) (Address, UInt32, Int, Stream) -> Status
  private let streamCreate: @convention(c) (UnsafeMutablePointer<Stream>, UInt32) -> Status
  private let streamDestroy: @convention(c) (Stream) -> Status
  private let streamSynchronize: @convention(c) (Stream) -> Status
  private let eventCreate: @convention(c) (UnsafeMutablePointer<Event>, UInt32) -> Status
  private let eventDestroy: @convention(c) (Event) -> Status
  private let eventRecord: @convention(c) (Event, Stream) -> Status
  private let eventSynchronize: @convention(c) (Event) -> Status
  private let eventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, Event, Event) -> Status
  private let streamBeginCapture: @convention(c) (Stream, Int32) -> Status
  private let streamEndCapture: @convention(c) (Stream, UnsafeMutablePointer<Graph>) -> Status
  private let graphInstantiate: @convention(c) (UnsafeMutablePointer<GraphExec>, Graph, UInt64) -> Status
  private let graphLaunch: @convention(c) (GraphExec, Stream) -> Status
  private let graphExecDestroy: @convention(c) (GraphExec) -> Status
  private let graphDestroy: @convention(c) (Graph) -> Status

  static let hint = "no NVIDIA driver on this machine (in a container: the NVIDIA Container Toolkit and --gpus)"

  public convenience init(folders: [String] = DynamicLibrary.searchFolders()) throws {
    try self.init(library: DynamicLibrary.open("the CUDA driver", names: ["libcuda.so.1", "libcuda.so"], folders: folders, hint: Self.hint))
  }

  /// The emulated device's driver (Sources/CUDAEmulator).
  public static func emulated() throws -> CUDADriverAPI {
    try CUDADriverAPI(library: .emulated("the CUDA driver", library: "cuda"))
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
    contextGetCurrent = try library.function("cuCtxGetCurrent")
    moduleLoadData = try library.function("cuModuleLoadData")
    deviceTotalMemory = try library.function("cuDeviceTotalMem_v2")
    moduleGetFunction = try library.function("cuModuleGetFunction")
    launchKernel = try library.function("cuLaunchKernel")
    memoryAllocate = try library.function("cuMemAlloc_v2")
    memoryFree = try library.function("cuMemFree_v2")
    memoryInfo = try library.function("cuMemGetInfo_v2")
    copyHostToDevice = try library.function("cuMemcpyHtoDAsync_v2")
    copyDeviceToHost = try library.function("cuMemcpyDtoHAsync_v2")
    copyDeviceToDevice = try library.function("cuMemcpyDtoDAsync_v2")
    memset32 = try library.function("cuMemsetD32Async")
    streamCreate = try library.function("cuStreamCreate")
    streamDestroy = try library.function("cuStreamDestroy_v2")
    streamSynchronize = try library.function("cuStreamSynchronize")
    eventCreate = try library.function("cuEventCreate")
    eventDestroy = try library.function("cuEventDestroy_v2")
    eventRecord = try library.function("cuEventRecord")
    eventSynchronize = try library.function("cuEventSynchronize")
    eventElapsedTime = try library.function("cuEventElapsedTime")
    streamBeginCapture = try library.function("cuStreamBeginCapture_v2")
    streamEndCapture = try library.function("cuStreamEndCapture")
    graphInstantiate = try library.function("cuGraphInstantiateWithFlags")
    graphLaunch = try library.function("cuGraphLaunch")
    graphExecDestroy = try library.function("cuGraphExecDestroy")
    graphDestroy = try library.function("cuGraphDestroy")
  }

  /// Whether this is the emulated device's driver.
  public var isEmulated: Bool { library.isEmulated }

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
      700: "a kernel was given an address outside device memory",
      710: "a kernel's launch rule was broken (see the kernel's header comment)",
      719: "a kernel failed",
      900: "a recorded step called what a CUDA graph cannot hold (a synchronisation, an allocation, a host copy)",
      901: "the recording was invalidated by an earlier call (the first error says which)",
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

  /// Retains the device's primary context and makes it current on this thread; returns it.
  @discardableResult
  public func useDevice(_ device: Device) throws -> Context {
    var context: Context = nil
    try check(primaryContextRetain(&context, device), "cuDevicePrimaryCtxRetain")
    try makeCurrent(context)
    return context
  }

  /// Makes `context` current on the calling thread (a context is current per thread).
  public func makeCurrent(_ context: Context) throws { try check(contextSetCurrent(context), "cuCtxSetCurrent") }

  /// Makes `context` current on the calling thread unless it already is.
  public func ensureCurrent(_ context: Context) throws {
    if try currentContext() != context { try makeCurrent(context) }
  }

  /// The context current on the calling thread (nil if none).
  public func currentContext() throws -> Context {
    var context: Context = nil
    try check(contextGetCurrent(&context), "cuCtxGetCurrent")
    return context
  }

  /// Loads a CUBIN into the current context.
  public func loadModule(_ cubin: [UInt8], name: String) throws -> Module {
    var module: Module = nil
    try cubin.withUnsafeBytes { try check(moduleLoadData(&module, $0.baseAddress!), "cuModuleLoadData(\(name))") }
    return module
  }

  // MARK: Kernels

  /// The kernel `name` of a loaded module.
  public func function(_ name: String, in module: Module) throws -> Function {
    var function: Function = nil
    try check(moduleGetFunction(&function, module, name), "cuModuleGetFunction(\(name))")
    return function
  }

  /// Launches `function` with `parameters` (one pointer to each argument's value, as the
  /// kernel declares them) on `stream`.
  public func launch(
    _ function: Function, name: String, grid: (x: Int, y: Int, z: Int), block: (x: Int, y: Int, z: Int), sharedBytes: Int = 0,
    stream: Stream, parameters: UnsafeMutablePointer<UnsafeMutableRawPointer?>
  ) throws {
    try check(
      launchKernel(
        function, UInt32(grid.x), UInt32(grid.y), UInt32(grid.z), UInt32(block.x), UInt32(block.y), UInt32(block.z), UInt32(sharedBytes),
        stream, parameters, nil), "cuLaunchKernel(\(name), grid \(grid.x)×\(grid.y)×\(grid.z), block \(block.x)×\(block.y)×\(block.z))")
  }

  // MARK: Memory

  public func allocate(bytes: Int) throws -> Address {
    var address: Address = 0
    try check(memoryAllocate(&address, bytes), "cuMemAlloc(\(bytes) bytes)")
    return address
  }

  public func free(_ address: Address) throws { try check(memoryFree(address), "cuMemFree") }

  /// (free, total) bytes of the current device.
  public func memoryInformation() throws -> (free: Int, total: Int) {
    var (free, total) = (0, 0)
    try check(memoryInfo(&free, &total), "cuMemGetInfo")
    return (free, total)
  }

  public func copy(to destination: Address, from source: UnsafeRawPointer, bytes: Int, stream: Stream) throws {
    try check(copyHostToDevice(destination, source, bytes, stream), "cuMemcpyHtoDAsync(\(bytes) bytes)")
  }

  public func copy(to destination: UnsafeMutableRawPointer, from source: Address, bytes: Int, stream: Stream) throws {
    try check(copyDeviceToHost(destination, source, bytes, stream), "cuMemcpyDtoHAsync(\(bytes) bytes)")
  }

  public func copy(to destination: Address, from source: Address, bytes: Int, stream: Stream) throws {
    try check(copyDeviceToDevice(destination, source, bytes, stream), "cuMemcpyDtoDAsync(\(bytes) bytes)")
  }

  /// Sets `count` 32-bit words to `value` (a float's bit pattern fills a float buffer).
  public func fill(_ destination: Address, words value: UInt32, count: Int, stream: Stream) throws {
    try check(memset32(destination, value, count, stream), "cuMemsetD32Async(\(count) words)")
  }

  // MARK: Graphs

  /// Starts capturing `stream` into a graph: its work is recorded, not run, until
  /// `endCapture`. Thread-local mode: what a graph cannot hold (a synchronisation, an
  /// allocation) fails on this thread, and other threads (other members) are unaffected.
  public func beginCapture(_ stream: Stream) throws {
    try check(streamBeginCapture(stream, 1), "cuStreamBeginCapture")  // CU_STREAM_CAPTURE_MODE_THREAD_LOCAL
  }

  /// Ends the capture and instantiates what it recorded.
  public func endCapture(_ stream: Stream) throws -> GraphExec {
    var graph: Graph = nil
    try check(streamEndCapture(stream, &graph), "cuStreamEndCapture")
    defer { _ = graphDestroy(graph) }
    var exec: GraphExec = nil
    try check(graphInstantiate(&exec, graph, 0), "cuGraphInstantiate")
    return exec
  }

  public func launch(_ graph: GraphExec, stream: Stream) throws { try check(graphLaunch(graph, stream), "cuGraphLaunch") }

  public func destroy(graph: GraphExec) { _ = graphExecDestroy(graph) }

  // MARK: Streams and events

  public func createStream() throws -> Stream {
    var stream: Stream = nil
    try check(streamCreate(&stream, 1), "cuStreamCreate")  // CU_STREAM_NON_BLOCKING
    return stream
  }

  public func destroy(stream: Stream) { _ = streamDestroy(stream) }

  public func synchronize(_ stream: Stream) throws { try check(streamSynchronize(stream), "cuStreamSynchronize") }

  public func createEvent() throws -> Event {
    var event: Event = nil
    try check(eventCreate(&event, 0), "cuEventCreate")
    return event
  }

  public func destroy(event: Event) { _ = eventDestroy(event) }

  public func record(_ event: Event, on stream: Stream) throws { try check(eventRecord(event, stream), "cuEventRecord") }

  /// Milliseconds between two recorded events, once `end` has completed.
  public func elapsed(from start: Event, to end: Event) throws -> Float {
    try check(eventSynchronize(end), "cuEventSynchronize")
    var milliseconds: Float = 0
    try check(eventElapsedTime(&milliseconds, start, end), "cuEventElapsedTime")
    return milliseconds
  }
}
