import COpenBLAS

/// The reference backend: OpenBLAS for matrix products, hand-written SIMD loops for the
/// rest, split over `threads` cores in fixed chunks (see `Parallel`), so the same thread
/// count gives bit-identical results.
public final class CPUBackend: Backend {
  public let parallel: Parallel
  public var name: String { "cpu (\(parallel.threads) thread\(parallel.threads == 1 ? "" : "s"))" }

  // Scratch for per-chunk partial sums, grown on first use and then reused: after the
  // first step of a given shape, no operation allocates.
  private var floatScratch = UnsafeMutablePointer<Float>.allocate(capacity: 1)
  private var floatScratchCount = 0
  private var doubleScratch = UnsafeMutablePointer<Double>.allocate(capacity: 1)
  private var doubleScratchCount = 0

  public init(threads: Int) {
    parallel = Parallel(threads: threads)
    openblas_set_num_threads(Int32(threads))
  }

  deinit {
    floatScratch.deallocate()
    doubleScratch.deallocate()
  }

  /// At least `count` floats of scratch, zeroed.
  func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
    if count > floatScratchCount {
      floatScratch.deallocate()
      floatScratch = .allocate(capacity: count)
      floatScratchCount = count
    }
    floatScratch.update(repeating: 0, count: count)
    return floatScratch
  }

  /// At least `count` doubles of scratch, zeroed.
  func doubles(_ count: Int) -> UnsafeMutablePointer<Double> {
    if count > doubleScratchCount {
      doubleScratch.deallocate()
      doubleScratch = .allocate(capacity: count)
      doubleScratchCount = count
    }
    doubleScratch.update(repeating: 0, count: count)
    return doubleScratch
  }

  public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
      transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha, a,
      Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }
}

// MARK: - SIMD helpers shared by the CPU kernels

@inline(__always) func load8(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func load8(_ pointer: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func store8(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
}
