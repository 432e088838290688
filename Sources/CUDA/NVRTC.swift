import Foundation

/// NVRTC, the run-time CUDA C compiler, through our own declarations of the entry points
/// used (libnvrtc.so.13 or .12, from a CUDA toolkit or pip's nvidia-cuda-nvrtc wheel).
public final class NVRTC {
  typealias Status = Int32
  typealias Program = OpaquePointer?
  public let library: DynamicLibrary
  /// (major, minor), e.g. (13, 0).
  public let version: (major: Int, minor: Int)

  private let getErrorString: @convention(c) (Status) -> UnsafePointer<CChar>?
  private let createProgram: @convention(c) (
    UnsafeMutablePointer<Program>, UnsafePointer<CChar>, UnsafePointer<CChar>, Int32, UnsafePointer<UnsafePointer<CChar>?>?,
    UnsafePointer<UnsafePointer<CChar>?>?
  ) -> Status
  private let compileProgram: @convention(c) (Program, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Status
  private let getProgramLogSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Status
  private let getProgramLog: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Status
  private let getCUBINSize: @convention(c) (Program, UnsafeMutablePointer<Int>) -> Status
  private let getCUBIN: @convention(c) (Program, UnsafeMutablePointer<CChar>) -> Status
  private let destroyProgram: @convention(c) (UnsafeMutablePointer<Program>) -> Status

  public static let libraryNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
  static let hint = "install a CUDA toolkit (set CUDA_HOME) or `pip install nvidia-cuda-nvrtc`"

  public convenience init(folders: [String] = DynamicLibrary.searchFolders()) throws {
    try self.init(library: DynamicLibrary.open("NVRTC", names: Self.libraryNames, folders: folders, hint: Self.hint))
  }

  /// The emulated device's NVRTC: it finds the CPU build of a kernel file by its name.
  public static func emulated() throws -> NVRTC { try NVRTC(library: .emulated("NVRTC", library: "nvrtc")) }

  public init(library: DynamicLibrary) throws {
    self.library = library
    getErrorString = try library.function("nvrtcGetErrorString")
    createProgram = try library.function("nvrtcCreateProgram")
    compileProgram = try library.function("nvrtcCompileProgram")
    getProgramLogSize = try library.function("nvrtcGetProgramLogSize")
    getProgramLog = try library.function("nvrtcGetProgramLog")
    getCUBINSize = try library.function("nvrtcGetCUBINSize")
    getCUBIN = try library.function("nvrtcGetCUBIN")
    destroyProgram = try library.function("nvrtcDestroyProgram")
    let versionFunction: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Status = try library.function("nvrtcVersion")
    var (major, minor): (Int32, Int32) = (0, 0)
    let status = versionFunction(&major, &minor)
    version = (Int(major), Int(minor))
    try check(status, "nvrtcVersion")
  }

  /// Every NVRTC status goes through here.
  func check(_ status: Status, _ call: String, hint: String = "") throws {
    guard status != 0 else { return }
    let message = getErrorString(status).map { String(cString: $0) } ?? "unknown NVRTC error"
    throw CUDAError.call(name: call, status: status, message: message, hint: hint)
  }

  /// Compiles `source` to a CUBIN for `architecture` ("sm_90"): machine code the driver
  /// loads as is (no PTX JIT at start-up). `headers` are (name, text) pairs the source may
  /// #include.
  public func compile(_ source: String, name: String, architecture: String, headers: [(name: String, text: String)] = [], options: [String] = [])
    throws -> [UInt8]
  {
    var program: Program = nil
    let allOptions = ["--gpu-architecture=\(architecture)", "--std=c++17"] + options
    try withCStrings(headers.map(\.text)) { headerTexts in
      try withCStrings(headers.map(\.name)) { headerNames in
        try check(
          createProgram(&program, source, name, Int32(headers.count), headerTexts, headerNames), "nvrtcCreateProgram")
      }
    }
    defer { _ = destroyProgram(&program) }
    let status = withCStrings(allOptions) { compileProgram(program, Int32(allOptions.count), $0) }
    if status != 0 {
      var size = 0
      _ = getProgramLogSize(program, &size)
      var log = [CChar](repeating: 0, count: max(size, 1))
      _ = getProgramLog(program, &log)
      throw CUDAError.compilation(kernel: name, architecture: architecture, log: String(cString: log))
    }
    var size = 0
    try check(getCUBINSize(program, &size), "nvrtcGetCUBINSize", hint: "a virtual architecture (compute_XX) gives PTX, not a CUBIN")
    var cubin = [CChar](repeating: 0, count: size)
    try check(getCUBIN(program, &cubin), "nvrtcGetCUBIN")
    return cubin.map { UInt8(bitPattern: $0) }
  }
}

/// C strings for an array of Swift strings, alive during `body`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) throws -> R) rethrows -> R {
  let copies = strings.map { strdup($0) }
  defer { copies.forEach { free($0) } }
  let pointers = copies.map { UnsafePointer($0) }
  return try pointers.withUnsafeBufferPointer { try body(strings.isEmpty ? nil : $0.baseAddress) }
}
