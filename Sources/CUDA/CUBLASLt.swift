import Foundation

/// cuBLASLt (libcublasLt.so.13 or .12, from a CUDA toolkit or pip's nvidia-cublas wheel),
/// through our own declarations of the entry points the GEMMs use: the 1×1 convolutions,
/// the stem's im2col product and the classifier, with epilogues (bias, ReLU) where they
/// fuse work. Every status is checked in `check`.
public final class CUBLASLt {
  typealias Status = Int32
  public typealias Handle = OpaquePointer?
  public let library: DynamicLibrary
  public let handle: Handle
  /// e.g. 130100 for 13.1.0.
  public let version: Int

  private let destroy: @convention(c) (Handle) -> Status
  private let getStatusString: @convention(c) (Status) -> UnsafePointer<CChar>?
  // Declared now, called by the GEMM path: resolving them at load time means a library
  // that lacks one fails here, with its name, rather than mid-training.
  let matmul: UnsafeRawPointer
  let matmulDescCreate: UnsafeRawPointer
  let matmulDescSetAttribute: UnsafeRawPointer
  let matrixLayoutCreate: UnsafeRawPointer
  let matmulPreferenceCreate: UnsafeRawPointer
  let matmulAlgoGetHeuristic: UnsafeRawPointer

  public static let libraryNames = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"]
  static let hint = "install a CUDA toolkit (set CUDA_HOME) or `pip install nvidia-cublas`"

  public convenience init(folders: [String] = DynamicLibrary.searchFolders()) throws {
    try self.init(library: DynamicLibrary.open("cuBLASLt", names: Self.libraryNames, folders: folders, hint: Self.hint))
  }

  /// The emulated device's cuBLASLt: the same descriptors and epilogues, on OpenBLAS.
  public static func emulated() throws -> CUBLASLt { try CUBLASLt(library: .emulated("cuBLASLt", library: "cublasLt")) }

  public init(library: DynamicLibrary) throws {
    self.library = library
    getStatusString = try library.function("cublasLtGetStatusString")
    destroy = try library.function("cublasLtDestroy")
    let getVersion: @convention(c) () -> Int = try library.function("cublasLtGetVersion")
    version = getVersion()
    func address(_ symbol: String) throws -> UnsafeRawPointer {
      UnsafeRawPointer(try library.function(symbol, as: UnsafeMutableRawPointer.self))
    }
    matmul = try address("cublasLtMatmul")
    matmulDescCreate = try address("cublasLtMatmulDescCreate")
    matmulDescSetAttribute = try address("cublasLtMatmulDescSetAttribute")
    matrixLayoutCreate = try address("cublasLtMatrixLayoutCreate")
    matmulPreferenceCreate = try address("cublasLtMatmulPreferenceCreate")
    matmulAlgoGetHeuristic = try address("cublasLtMatmulAlgoGetHeuristic")
    let create: @convention(c) (UnsafeMutablePointer<Handle>) -> Status = try library.function("cublasLtCreate")
    var handle: Handle = nil
    let status = create(&handle)
    self.handle = handle
    try check(status, "cublasLtCreate")
  }

  deinit { if handle != nil { _ = destroy(handle) } }

  func check(_ status: Status, _ call: String) throws {
    guard status != 0 else { return }
    let hints: [Status: String] = [
      1: "no CUDA context: the driver is not initialised", 3: "out of GPU memory", 7: "a shape, a leading dimension or a pointer is wrong",
      13: "the GEMM failed to run on the GPU", 15: "no algorithm for these shapes, types and epilogue",
    ]
    throw CUDAError.call(
      name: call, status: status, message: getStatusString(status).map { String(cString: $0) } ?? "unknown cuBLASLt status", hint: hints[status] ?? "")
  }
}
