import Foundation

/// cuBLASLt (libcublasLt.so.13 or .12, from a CUDA toolkit or pip's nvidia-cublas wheel),
/// through our own declarations of the entry points the GEMMs use: the 1×1 convolutions,
/// the stem's im2col product and the classifier, with epilogues (bias, ReLU) where they
/// fuse work. Every status is checked in `check`. Or the emulated device's stand-in
/// (`emulated()`), with the same semantics on OpenBLAS.
public final class CUBLASLt {
  typealias Status = Int32
  public typealias Handle = OpaquePointer?
  typealias Descriptor = OpaquePointer?
  public let library: DynamicLibrary
  public let handle: Handle
  /// e.g. 130100 for 13.1.0.
  public let version: Int

  private let destroy: @convention(c) (Handle) -> Status
  private let getStatusString: @convention(c) (Status) -> UnsafePointer<CChar>?
  // Every entry point the GEMM path calls, resolved at load time: a library that lacks
  // one fails here, with its name, rather than mid-training.
  private let matmulDescCreate: @convention(c) (UnsafeMutablePointer<Descriptor>, Int32, Int32) -> Status
  private let matmulDescSetAttribute: @convention(c) (Descriptor, Int32, UnsafeRawPointer, Int) -> Status
  private let matmulDescDestroy: @convention(c) (Descriptor) -> Status
  private let matrixLayoutCreate: @convention(c) (UnsafeMutablePointer<Descriptor>, Int32, UInt64, UInt64, Int64) -> Status
  private let matrixLayoutDestroy: @convention(c) (Descriptor) -> Status
  private let preferenceCreate: @convention(c) (UnsafeMutablePointer<Descriptor>) -> Status
  private let preferenceSetAttribute: @convention(c) (Descriptor, Int32, UnsafeRawPointer, Int) -> Status
  private let preferenceDestroy: @convention(c) (Descriptor) -> Status
  private let algoGetHeuristic: @convention(c) (
    Handle, Descriptor, Descriptor, Descriptor, Descriptor, Descriptor, Descriptor, Int32, UnsafeMutableRawPointer,
    UnsafeMutablePointer<Int32>
  ) -> Status
  private let matmul: @convention(c) (
    Handle, Descriptor, UnsafeRawPointer, UInt64, Descriptor, UInt64, Descriptor, UnsafeRawPointer, UInt64, Descriptor, UInt64,
    Descriptor, UnsafeRawPointer?, UInt64, Int, CUDADriverAPI.Stream
  ) -> Status

  public static let libraryNames = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"]
  static let hint = "install a CUDA toolkit (set CUDA_HOME) or `pip install nvidia-cublas`"

  public convenience init(folders: [String] = DynamicLibrary.searchFolders()) throws {
    try self.init(library: DynamicLibrary.open("cuBLASLt", names: Self.libraryNames, folders: folders, hint: Self.hint))
  }

  /// The library found and its version (major·10000 + minor·100 + patch), without a handle:
  /// a handle needs a CUDA context, and this answers on a machine with no driver (what
  /// `quorum doctor` says of an image's CUDA libraries).
  public static func probe(folders: [String] = DynamicLibrary.searchFolders()) throws -> (library: DynamicLibrary, version: Int) {
    let library = try DynamicLibrary.open("cuBLASLt", names: libraryNames, folders: folders, hint: hint)
    let getVersion: @convention(c) () -> Int = try library.function("cublasLtGetVersion")
    return (library, getVersion())
  }

  /// The emulated device's cuBLASLt: the same descriptors and epilogues, on OpenBLAS.
  public static func emulated() throws -> CUBLASLt { try CUBLASLt(library: .emulated("cuBLASLt", library: "cublasLt")) }

  public init(library: DynamicLibrary) throws {
    self.library = library
    getStatusString = try library.function("cublasLtGetStatusString")
    destroy = try library.function("cublasLtDestroy")
    let getVersion: @convention(c) () -> Int = try library.function("cublasLtGetVersion")
    version = getVersion()
    matmul = try library.function("cublasLtMatmul")
    matmulDescCreate = try library.function("cublasLtMatmulDescCreate")
    matmulDescSetAttribute = try library.function("cublasLtMatmulDescSetAttribute")
    matmulDescDestroy = try library.function("cublasLtMatmulDescDestroy")
    matrixLayoutCreate = try library.function("cublasLtMatrixLayoutCreate")
    matrixLayoutDestroy = try library.function("cublasLtMatrixLayoutDestroy")
    preferenceCreate = try library.function("cublasLtMatmulPreferenceCreate")
    preferenceSetAttribute = try library.function("cublasLtMatmulPreferenceSetAttribute")
    preferenceDestroy = try library.function("cublasLtMatmulPreferenceDestroy")
    algoGetHeuristic = try library.function("cublasLtMatmulAlgoGetHeuristic")
    let create: @convention(c) (UnsafeMutablePointer<Handle>) -> Status = try library.function("cublasLtCreate")
    var handle: Handle = nil
    let status = create(&handle)
    self.handle = handle
    try check(status, "cublasLtCreate")
  }

  deinit {
    for plan in plans.values { release(plan) }
    if handle != nil { _ = destroy(handle) }
  }

  /// What to do about a cuBLASLt status (cublas_api.h: 1 NOT_INITIALIZED, 3 ALLOC_FAILED,
  /// 7 INVALID_VALUE, 13 EXECUTION_FAILED, 15 NOT_SUPPORTED).
  public static let statusHints: [Int32: String] = [
    1: "no CUDA context: the driver is not initialised", 3: "out of GPU memory", 7: "a shape, a leading dimension or a pointer is wrong",
    13: "the GEMM failed to run on the GPU", 15: "no algorithm for these shapes, types and epilogue",
  ]

  func check(_ status: Status, _ call: String) throws {
    guard status != 0 else { return }
    throw CUDAError.call(
      name: call, status: status, message: getStatusString(status).map { String(cString: $0) } ?? "unknown cuBLASLt status",
      hint: Self.statusHints[status] ?? "")
  }

  // MARK: GEMMs

  /// What follows the product, fused into it.
  public enum Epilogue: Hashable {
    case none
    case relu
    /// + bias[column] (row-major columns: a linear layer's outputs).
    case bias
    case reluBias

    var value: UInt32 {
      switch self {
      case .none: return 1  // CUBLASLT_EPILOGUE_DEFAULT
      case .relu: return 2
      case .bias: return 4
      case .reluBias: return 6
      }
    }
    var usesBias: Bool { self == .bias || self == .reluBias }
  }

  /// One GEMM shape's descriptors and the algorithm cuBLASLt's heuristic chose for it,
  /// made once and reused by every later call of that shape.
  struct Shape: Hashable {
    var transposeA, transposeB: Bool
    var m, n, k, lda, ldb, ldc: Int
    var epilogue: Epilogue
  }
  struct Plan {
    var operation: Descriptor
    var layoutA, layoutB, layoutC: Descriptor
    /// cublasLtMatmulHeuristicResult_t: the algorithm first, 64 bytes.
    var heuristic: [UInt8]
  }
  private var plans: [Shape: Plan] = [:]

  private func release(_ plan: Plan) {
    _ = matmulDescDestroy(plan.operation)
    for layout in [plan.layoutA, plan.layoutB, plan.layoutC] { _ = matrixLayoutDestroy(layout) }
  }

  /// c[m, n] = epilogue(alpha · op(a) · op(b) + beta · c), float32, all row-major as
  /// `Backend.gemm` (bias: `n` floats, one per column). cuBLASLt is column-major, and a
  /// row-major matrix is its transpose in column-major: so it computes cᵀ = op(b)ᵀ·op(a)ᵀ
  /// with the operands swapped.
  public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: CUDADriverAPI.Address, lda: Int,
    b: CUDADriverAPI.Address, ldb: Int, beta: Float, c: CUDADriverAPI.Address, ldc: Int, epilogue: Epilogue = .none,
    bias: CUDADriverAPI.Address = 0, stream: CUDADriverAPI.Stream
  ) throws {
    let shape = Shape(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, epilogue: epilogue)
    let plan = try plans[shape] ?? makePlan(shape)
    plans[shape] = plan
    if epilogue.usesBias {
      var pointer = bias
      try check(matmulDescSetAttribute(plan.operation, 8, &pointer, 8), "cublasLtMatmulDescSetAttribute(BIAS_POINTER)")
    }
    var (alphaValue, betaValue) = (alpha, beta)
    try plan.heuristic.withUnsafeBytes { algorithm in
      try check(
        matmul(
          handle, plan.operation, &alphaValue, b, plan.layoutA, a, plan.layoutB, &betaValue, c, plan.layoutC, c, plan.layoutC,
          algorithm.baseAddress, 0, 0, stream),
        "cublasLtMatmul(\(m)×\(n)×\(k)\(transposeA ? ", Aᵀ" : "")\(transposeB ? ", Bᵀ" : "")\(epilogue == .none ? "" : ", epilogue \(epilogue)"))")
    }
  }

  private func makePlan(_ shape: Shape) throws -> Plan {
    let float32: Int32 = 0, compute32F: Int32 = 68
    var operation: Descriptor = nil
    try check(matmulDescCreate(&operation, compute32F, float32), "cublasLtMatmulDescCreate")
    // Column-major: "A" is the row-major b, "B" the row-major a.
    var (transA, transB): (Int32, Int32) = (shape.transposeB ? 1 : 0, shape.transposeA ? 1 : 0)
    try check(matmulDescSetAttribute(operation, 3, &transA, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
    try check(matmulDescSetAttribute(operation, 4, &transB, 4), "cublasLtMatmulDescSetAttribute(TRANSB)")
    var epilogue = shape.epilogue.value
    try check(matmulDescSetAttribute(operation, 7, &epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)")
    func layout(rows: Int, columns: Int, leading: Int) throws -> Descriptor {
      var layout: Descriptor = nil
      try check(matrixLayoutCreate(&layout, float32, UInt64(rows), UInt64(columns), Int64(leading)), "cublasLtMatrixLayoutCreate")
      return layout
    }
    // Stored row-major [r, c] with leading dimension ld is column-major [c, r].
    let layoutA = try layout(rows: shape.transposeB ? shape.k : shape.n, columns: shape.transposeB ? shape.n : shape.k, leading: shape.ldb)
    let layoutB = try layout(rows: shape.transposeA ? shape.m : shape.k, columns: shape.transposeA ? shape.k : shape.m, leading: shape.lda)
    let layoutC = try layout(rows: shape.n, columns: shape.m, leading: shape.ldc)
    var preference: Descriptor = nil
    try check(preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
    defer { _ = preferenceDestroy(preference) }
    var workspace: UInt64 = 0
    try check(preferenceSetAttribute(preference, 1, &workspace, 8), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
    var heuristic = [UInt8](repeating: 0, count: 96)
    var returned: Int32 = 0
    try heuristic.withUnsafeMutableBytes {
      try check(
        algoGetHeuristic(handle, operation, layoutA, layoutB, layoutC, layoutC, preference, 1, $0.baseAddress!, &returned),
        "cublasLtMatmulAlgoGetHeuristic(\(shape.m)×\(shape.n)×\(shape.k))")
    }
    guard returned > 0 else {
      throw CUDAError.call(
        name: "cublasLtMatmulAlgoGetHeuristic(\(shape.m)×\(shape.n)×\(shape.k))", status: 15, message: "no algorithm", hint: "")
    }
    return Plan(operation: operation, layoutA: layoutA, layoutB: layoutB, layoutC: layoutC, heuristic: Array(heuristic.prefix(64)))
  }
}
