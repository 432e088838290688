import COneDNN
import COpenBLAS
import Foundation

/// The library whose single-threaded sgemm multiplies the CPU backend's matrices (the 1×1
/// convolutions, the stem's im2col product, the classifier: most of a step's time).
///
/// oneDNN's sgemm is generated at run time for the instructions the CPU has (AVX2, AVX-512,
/// AMX), so no table of CPU models can leave it on old kernels; at MobileNetV2's shapes on
/// the 2-core Xeon of docs/benchmarks.md it did a step's products in 31.4 ms where
/// OpenBLAS's best kernels took 42.4 (`scripts/bench/gemm_candidates.sh`, the table in
/// docs/compute-core.md). It is chosen wherever its JIT has AVX2 kernels or better (every
/// x86-64 CPU of the last decade); elsewhere (arm64, an x86-64 CPU without AVX2) OpenBLAS,
/// with its kernels chosen from the CPU's features (`BLASCore`). `QUORUM_GEMM=openblas` or
/// `onednn` overrides the choice (benchmarks, a suspected library bug).
public enum GEMMLibrary: String, CaseIterable, Sendable {
  case oneDNN = "onednn"
  case openBLAS = "openblas"

  /// The variable that names a library instead of the choice from the CPU's features.
  public static let environmentVariable = "QUORUM_GEMM"

  /// The library this process multiplies with, chosen once.
  public static let inUse: GEMMLibrary = (try? choice(environment: ProcessInfo.processInfo.environment)) ?? .openBLAS

  /// The library for this environment: the user's `QUORUM_GEMM`, else oneDNN where its
  /// JIT has AVX2 kernels or better, else OpenBLAS. Throws for a name it does not know.
  public static func choice(environment: [String: String], oneDNNHasAVX2: Bool = oneDNNHasAVX2Kernels) throws -> GEMMLibrary {
    if let named = environment[environmentVariable] {
      guard let library = GEMMLibrary(rawValue: named.lowercased()) else {
        throw GEMMLibraryError.unknown(named)
      }
      return library
    }
    return oneDNNHasAVX2 ? .oneDNN : .openBLAS
  }

  /// Whether oneDNN's JIT generates AVX2 kernels or better on this CPU (never off x86-64,
  /// where Debian's oneDNN has reference loops only).
  public static var oneDNNHasAVX2Kernels: Bool {
    #if arch(x86_64)
      let avx2 = dnnl_cpu_isa_avx2.rawValue
      return dnnl_get_effective_cpu_isa().rawValue & avx2 == avx2
    #else
      return false
    #endif
  }

  /// oneDNN's name for the instructions its kernels use here.
  public static var oneDNNInstructions: String {
    let isa = dnnl_get_effective_cpu_isa()
    let names: [(dnnl_cpu_isa_t, String)] = [
      (dnnl_cpu_isa_avx512_core_amx, "AMX"), (dnnl_cpu_isa_avx512_core_bf16, "AVX-512 (bf16)"),
      (dnnl_cpu_isa_avx512_core_vnni, "AVX-512 (VNNI)"), (dnnl_cpu_isa_avx512_core, "AVX-512"),
      (dnnl_cpu_isa_avx2_vnni, "AVX2 (VNNI)"), (dnnl_cpu_isa_avx2, "AVX2"), (dnnl_cpu_isa_avx, "AVX"),
      (dnnl_cpu_isa_sse41, "SSE4.1"),
    ]
    return names.first { isa.rawValue & $0.0.rawValue == $0.0.rawValue && $0.0.rawValue != 0 }?.1 ?? "reference"
  }

  /// One line on the kernels in use, for logs and `quorum doctor`; `weakerThanTheCPUAllows`
  /// where the user's choice or OpenBLAS's kernels leave speed behind.
  public static func summary() -> (line: String, weakerThanTheCPUAllows: Bool) {
    switch inUse {
    case .oneDNN:
      let named = ProcessInfo.processInfo.environment[environmentVariable] != nil
      return ("oneDNN \(oneDNNInstructions) GEMM kernels" + (named ? " (\(environmentVariable) is set)" : ""), false)
    case .openBLAS:
      let blas = BLASCore.summary()
      if ProcessInfo.processInfo.environment[environmentVariable] != nil && oneDNNHasAVX2Kernels {
        return (blas.line + " (\(environmentVariable)=openblas is set; oneDNN's \(oneDNNInstructions) kernels are faster here)", true)
      }
      return blas
    }
  }
}

public enum GEMMLibraryError: Error, CustomStringConvertible {
  case unknown(String)

  public var description: String {
    switch self {
    case .unknown(let name):
      "\(GEMMLibrary.environmentVariable)=\(name): not a GEMM library Quorum knows (onednn or openblas), or unset to choose from the CPU's features"
    }
  }
}

/// oneDNN was built against an OpenMP runtime (Debian's, libgomp): a call starts a team of
/// as many threads as the calling thread's OpenMP setting says, the cores by default. The
/// backend splits products over its own threads, so every thread that calls in asks for a
/// team of one first. Found at run time (oneDNN brought the runtime in): a oneDNN built on
/// another threading runtime leaves this nil and is called as it is.
private let ompSetNumThreads: (@convention(c) (Int32) -> Void)? = {
  // A nil handle is RTLD_DEFAULT: every library loaded.
  guard let symbol = dlsym(nil, "omp_set_num_threads") else { return nil }
  return unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Void).self)
}()

/// C = α·op(A)·op(B) + β·C, row major, on the calling thread alone.
@inline(__always)
func singleThreadedSgemm(
  _ library: GEMMLibrary, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
  switch library {
  case .oneDNN:
    ompSetNumThreads?(1)
    let (t, n_) = (CChar(UInt8(ascii: "T")), CChar(UInt8(ascii: "N")))
    let status = dnnl_sgemm(
      transposeA ? t : n_, transposeB ? t : n_, Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
    // An argument error (the backend's shapes are checked before they get here) or no
    // memory for its packing buffers: nothing to hand back from a product.
    if status != dnnl_success {
      fatalError("oneDNN's sgemm failed (status \(status.rawValue)) on a \(m)×\(k) by \(k)×\(n) product")
    }
  case .openBLAS:
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
      alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }
}
