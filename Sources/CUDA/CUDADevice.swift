import Foundation

/// One GPU (or the emulated device) ready to run Quorum's kernels: its driver, its primary
/// context, a stream, and every kernel file compiled for its architecture (through the
/// CUBIN cache) and loaded. Kernels are found by name and launched with typed arguments.
public final class CUDADevice {
  public let driver: CUDADriverAPI
  public let architecture: String
  public let name: String
  /// Its index among the driver's GPUs (the N of cuda:N).
  public let ordinal: Int
  /// The stream every launch and copy of this device goes on, in order.
  public let stream: CUDADriverAPI.Stream
  /// The device's primary context: current per thread, so every thread that uses this
  /// device makes it current first (`makeCurrent`).
  let context: CUDADriverAPI.Context
  private var modules: [String: CUDADriverAPI.Module] = [:]
  private var functions: [String: CUDADriverAPI.Function] = [:]
  /// Kernel name → the file it is defined in.
  private let kernelFiles: [String: String]
  /// Its buffers' memory: a caching allocator (DeviceMemory.swift).
  let memory: DeviceMemory
  /// Bytes of this device's buffers alive now, and blocks allocated from the driver since
  /// it was made (a buffer made from a cached block is not one): what an out-of-memory
  /// error reports, and how the tests see that a training step allocates nothing.
  public var liveBytes: Int { memory.liveBytes }
  public var allocationCount: Int { memory.allocationCount }
  /// Bytes of freed buffers kept for reuse.
  public var cachedBytes: Int { memory.cachedBytes }

  /// The emulated device's GPU `ordinal`: the stand-in driver, NVRTC and kernels of
  /// Sources/CUDAEmulator.
  public static func emulated(_ ordinal: Int = 0, cachesFreedBuffers: Bool = true) throws -> CUDADevice {
    try CUDADevice(driver: .emulated(), compiler: KernelCompiler(nvrtc: .emulated()), ordinal: ordinal, cachesFreedBuffers: cachesFreedBuffers)
  }

  /// GPU `ordinal`, with its kernels compiled by `compiler` (or read from its cache).
  /// `cachesFreedBuffers` off: every buffer is allocated and freed through the driver.
  public init(driver: CUDADriverAPI, compiler: KernelCompiler, ordinal: Int, cachesFreedBuffers: Bool = true) throws {
    self.driver = driver
    self.ordinal = ordinal
    try driver.initialise()
    let device = try driver.device(ordinal)
    context = try driver.useDevice(device)
    architecture = try driver.architecture(of: device)
    name = try driver.name(of: device)
    stream = try driver.createStream()
    memory = DeviceMemory(driver: driver, ordinal: ordinal, context: context, stream: stream, caches: cachesFreedBuffers)
    var files: [String: String] = [:]
    for source in KernelSources.all {
      let cubin = try compiler.cubin(source, architecture: architecture).bytes
      modules[source.file] = try driver.loadModule(cubin, name: source.file)
      for kernel in KernelSources.kernelNames(in: source) { files[kernel] = source.file }
    }
    kernelFiles = files
  }

  deinit {
    try? makeCurrent()
    driver.destroy(stream: stream)
  }

  /// Makes this device's context current on the calling thread, unless it is already. A
  /// worker builds its backends on one thread and trains on others; a buffer may be freed
  /// on a third; one thread may use several GPUs (`cuda:all`). Asking the driver (a
  /// thread-local read) is what stays right in every one of those cases.
  public func makeCurrent() throws { try driver.ensureCurrent(context) }

  /// The GPU's free and total memory (the driver's count: blocks cached by this process's
  /// backends are not free, though an allocation that needs them gets them).
  public func memoryInformation() throws -> (free: Int, total: Int) {
    try makeCurrent()
    return try driver.memoryInformation()
  }

  /// The kernel `name` from whichever kernel file defines it (or from `file`, for a module
  /// loaded with `load(_:file:)`).
  public func function(_ name: String, file: String? = nil) throws -> CUDADriverAPI.Function {
    if let function = functions[name] { return function }
    guard let file = file ?? kernelFiles[name], let module = modules[file] else {
      throw CUDAError.call(name: "kernel \(name)", status: 500, message: "no kernel file defines it", hint: "see Sources/CUDA/Kernels")
    }
    let function = try driver.function(name, in: module)
    functions[name] = function
    return function
  }

  /// Loads another module (the emulator's test fixtures).
  public func load(_ image: [UInt8], file: String) throws { modules[file] = try driver.loadModule(image, name: file) }

  /// Launches kernel `name` over `grid` blocks of `block` threads with `arguments` in the
  /// kernel's parameter order and types.
  public func launch(_ name: String, file: String? = nil, grid: Int, block: Int, _ arguments: [KernelArgument]) throws {
    try makeCurrent()
    let function = try function(name, file: file)
    // Each argument's value in its own 8-byte slot; the kernel reads each through a pointer.
    let slots = UnsafeMutableRawPointer.allocate(byteCount: max(arguments.count, 1) * 8, alignment: 8)
    let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(arguments.count, 1))
    defer {
      slots.deallocate()
      pointers.deallocate()
    }
    for (index, argument) in arguments.enumerated() {
      let slot = slots + index * 8
      argument.store(at: slot)
      pointers[index] = slot
    }
    try driver.launch(function, name: name, grid: (grid, 1, 1), block: (block, 1, 1), stream: stream, parameters: pointers)
  }

  public func synchronize() throws {
    try makeCurrent()
    try driver.synchronize(stream)
  }

  // MARK: Buffers

  /// A new buffer of `count` floats (its contents undefined: NaN on the emulated device).
  public func buffer(floats count: Int) throws -> DeviceBuffer { try DeviceBuffer(device: self, bytes: max(count, 1) * 4) }

  /// A new buffer holding `values` (float32, int32 labels, bf16 words…).
  public func buffer<Element: BitwiseCopyable>(_ values: [Element]) throws -> DeviceBuffer {
    let buffer = try DeviceBuffer(device: self, bytes: max(values.count, 1) * MemoryLayout<Element>.stride)
    try makeCurrent()
    try values.withUnsafeBytes { bytes in
      if let base = bytes.baseAddress { try driver.copy(to: buffer.address, from: base, bytes: bytes.count, stream: stream) }
    }
    return buffer
  }
}

/// Device memory, freed when the last reference goes. It keeps its device alive: a model's
/// tensors may outlive the backend that made them.
public final class DeviceBuffer {
  public let device: CUDADevice
  public let address: CUDADriverAPI.Address
  public let bytes: Int

  init(device: CUDADevice, bytes: Int) throws {
    self.device = device
    self.bytes = bytes
    address = try device.memory.allocate(bytes: bytes)
  }

  deinit { device.memory.release(address, bytes: bytes) }

  public var floatCount: Int { bytes / 4 }

  public func upload(_ values: [Float]) throws {
    precondition(values.count * 4 <= bytes, "\(values.count) floats into a \(bytes)-byte buffer")
    try device.makeCurrent()
    try values.withUnsafeBytes { try device.driver.copy(to: address, from: $0.baseAddress!, bytes: $0.count, stream: device.stream) }
  }

  /// The first `count` floats (all by default), after the stream's work so far.
  public func floats(_ count: Int? = nil) throws -> [Float] { try values(count ?? floatCount, of: Float.self) }

  /// The first `count` 16-bit words (bf16 values).
  public func halves(_ count: Int) throws -> [UInt16] { try values(count, of: UInt16.self) }

  func values<Element: BitwiseCopyable & Numeric>(_ count: Int, of type: Element.Type) throws -> [Element] {
    var values = [Element](repeating: 0, count: count)
    try device.makeCurrent()
    try values.withUnsafeMutableBytes { bytes in
      if let base = bytes.baseAddress { try device.driver.copy(to: base, from: address, bytes: bytes.count, stream: device.stream) }
    }
    try device.synchronize()
    return values
  }

  /// Sets every float to `value` (NaN to poison an output before a kernel writes it).
  public func fill(_ value: Float) throws {
    try device.makeCurrent()
    try device.driver.fill(address, words: value.bitPattern, count: bytes / 4, stream: device.stream)
  }
}

/// One word of a device buffer, passed to a kernel as a pointer: a value the kernel reads
/// when it runs (a `DeviceScalar`), so that a recorded launch reads each replay's value.
public struct DeviceWord {
  public let buffer: DeviceBuffer
  public let index: Int

  public init(_ buffer: DeviceBuffer, index: Int) {
    precondition(index >= 0 && index < buffer.floatCount, "word \(index) of a buffer of \(buffer.floatCount)")
    self.buffer = buffer
    self.index = index
  }

  public var address: CUDADriverAPI.Address { buffer.address + UInt64(index * 4) }
}

/// One kernel argument, of the C type the kernel declares.
public enum KernelArgument {
  case buffer(DeviceBuffer?)
  /// A pointer to one word (nil: a null pointer).
  case word(DeviceWord?)
  /// A raw address (the emulator's checks are tested with host and freed addresses).
  case address(UInt64)
  case int32(Int32)
  case int64(Int64)
  case uint32(UInt32)
  case uint64(UInt64)
  case float(Float)

  public static func int(_ value: Int) -> KernelArgument { .int32(Int32(value)) }
  public static func long(_ value: Int) -> KernelArgument { .int64(Int64(value)) }

  func store(at slot: UnsafeMutableRawPointer) {
    switch self {
    case .buffer(let buffer): slot.storeBytes(of: buffer?.address ?? 0, as: UInt64.self)
    case .word(let word): slot.storeBytes(of: word?.address ?? 0, as: UInt64.self)
    case .address(let address): slot.storeBytes(of: address, as: UInt64.self)
    case .int32(let value): slot.storeBytes(of: value, as: Int32.self)
    case .int64(let value): slot.storeBytes(of: value, as: Int64.self)
    case .uint32(let value): slot.storeBytes(of: value, as: UInt32.self)
    case .uint64(let value): slot.storeBytes(of: value, as: UInt64.self)
    case .float(let value): slot.storeBytes(of: value, as: Float.self)
    }
  }
}
