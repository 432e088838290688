import COpenBLAS

/// The reference backend: oneDNN or OpenBLAS for matrix products (`GEMMLibrary`),
/// hand-written SIMD loops for the rest, split over `threads` cores in fixed chunks (see
/// `Parallel`), so the same thread count gives bit-identical results.
public final class CPUBackend: Backend {
  public let parallel: Parallel
  public var name: String { "cpu (\(parallel.threads) thread\(parallel.threads == 1 ? "" : "s"))" }

  // Scratch for per-chunk partial sums, grown on first use and then reused: after the
  // first step of a given shape, no operation allocates.
  private let floatScratch = Scratch<Float>()
  private let doubleScratch = Scratch<Double>()

  /// The library of the matrix products (`GEMMLibrary`).
  public let gemmLibrary: GEMMLibrary

  public init(threads: Int, gemmLibrary: GEMMLibrary = .inUse) {
    parallel = Parallel(threads: threads)
    self.gemmLibrary = gemmLibrary
    // The library runs single-threaded; `gemm` splits the output over our own chunks. With
    // OpenBLAS's own threads, its helpers spin-yield between calls and fight the
    // element-wise kernels' threads for the cores (a sixth of a step on 2 cores); oneDNN
    // is asked for one thread by each caller (`singleThreadedSgemm`).
    openblas_set_num_threads(1)
  }

  /// At least `count` floats of scratch, zeroed.
  func floats(_ count: Int) -> UnsafeMutablePointer<Float> { floatScratch.zeroed(count) }

  /// At least `count` doubles of scratch, zeroed.
  func doubles(_ count: Int) -> UnsafeMutablePointer<Double> { doubleScratch.zeroed(count) }

  /// Splits c into blocks of rows (or of columns, when it is wider than tall) and runs
  /// one single-threaded sgemm per chunk. Every element is still one dot product over all
  /// of k, and the chunks depend on the thread count only, so the same thread count gives
  /// the same bits.
  public func gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
    c: UnsafeMutablePointer<Float>, ldc: Int
  ) {
    let library = gemmLibrary
    // Below ~2 MFLOP a second thread costs more than it saves.
    let work = m * n * k
    let splitRows = m >= n
    let chunks = work < 1 << 20 ? 1 : parallel.chunkCount(splitRows ? m : n, grain: 16)
    if chunks == 1 {
      singleThreadedSgemm(
        library, transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
        beta: beta, c: c, ldc: ldc)
      return
    }
    parallel.run(chunks: chunks) { chunk in
      let part = Parallel.range(chunk: chunk, of: chunks, count: splitRows ? m : n)
      if splitRows {
        // Rows i of op(A) start at a + i·lda (stored as is) or a + i (stored transposed).
        let rowsOfA = transposeA ? a + part.lowerBound : a + part.lowerBound * lda
        singleThreadedSgemm(
          library, transposeA: transposeA, transposeB: transposeB, m: part.count, n: n, k: k, alpha: alpha, a: rowsOfA, lda: lda,
          b: b, ldb: ldb, beta: beta, c: c + part.lowerBound * ldc, ldc: ldc)
      } else {
        let columnsOfB = transposeB ? b + part.lowerBound * ldb : b + part.lowerBound
        singleThreadedSgemm(
          library, transposeA: transposeA, transposeB: transposeB, m: m, n: part.count, k: k, alpha: alpha, a: a, lda: lda,
          b: columnsOfB, ldb: ldb, beta: beta, c: c + part.lowerBound, ldc: ldc)
      }
    }
  }
}

/// A buffer that grows to the largest size asked for and is then reused.
final class Scratch<Element: Numeric> {
  private var storage = UnsafeMutablePointer<Element>.allocate(capacity: 1)
  private var capacity = 1

  deinit { storage.deallocate() }

  /// At least `count` elements, set to zero.
  func zeroed(_ count: Int) -> UnsafeMutablePointer<Element> {
    if count > capacity {
      storage.deallocate()
      storage = .allocate(capacity: count)
      capacity = count
    }
    storage.update(repeating: .zero, count: count)
    return storage
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
