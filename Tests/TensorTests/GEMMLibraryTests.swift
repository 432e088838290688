import QuorumTestSupport
import Tensor
import XCTest

/// The CPU backend's matrix products, on either library, against a float64 reference;
/// and which library a process multiplies with.
final class GEMMLibraryTests: XCTestCase {
  /// Every transpose, leading dimensions wider than the matrices, α and β, a product small
  /// enough for one thread and one the backend splits by rows and one by columns: both
  /// libraries agree with the float64 product to float32's rounding.
  func testBothLibrariesMultiplyEveryLayoutTheBackendUses() {
    for library in GEMMLibrary.allCases {
      let backend = CPUBackend(threads: 2, gemmLibrary: library)
      for (m, n, k) in [(3, 5, 4), (300, 70, 90), (40, 260, 130)] {
        for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
          let (lda, ldb, ldc) = ((transposeA ? m : k) + 3, (transposeB ? k : n) + 2, n + 5)
          let a = randomTensor([(transposeA ? k : m) * lda], seed: 1)
          let b = randomTensor([(transposeB ? n : k) * ldb], seed: 2)
          let c = randomTensor([m * ldc], seed: 3)
          let before = c.array()
          let (alpha, beta): (Float, Float) = (0.75, 0.5)
          backend.gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a.data, lda: lda, b: b.data,
            ldb: ldb, beta: beta, c: c.data, ldc: ldc)
          let (av, bv, cv) = (a.array(), b.array(), c.array())
          var worst = 0.0
          for i in 0..<m {
            for j in 0..<n {
              var sum = 0.0
              for p in 0..<k {
                let x = Double(transposeA ? av[p * lda + i] : av[i * lda + p])
                let y = Double(transposeB ? bv[j * ldb + p] : bv[p * ldb + j])
                sum += x * y
              }
              let expected = Double(alpha) * sum + Double(beta) * Double(before[i * ldc + j])
              worst = max(worst, abs(Double(cv[i * ldc + j]) - expected) / (1 + abs(expected)))
            }
            // The padding between rows of C is left alone.
            for j in n..<ldc where i * ldc + j < before.count {
              XCTAssertEqual(cv[i * ldc + j], before[i * ldc + j], "\(library) wrote past n at row \(i)")
            }
          }
          XCTAssertLessThan(worst, 1e-5, "\(library) \(m)×\(n)×\(k) transposes \(transposeA) \(transposeB)")
        }
      }
    }
  }

  /// The same thread count gives the same bits, run after run (the chunks depend on it
  /// alone), whichever library multiplies.
  func testTheSameThreadCountGivesTheSameBits() {
    for library in GEMMLibrary.allCases {
      let (m, n, k) = (500, 96, 576)
      let a = randomTensor([m * k], seed: 4), b = randomTensor([k * n], seed: 5)
      func product() -> [Float] {
        let c = Tensor(shape: [m * n])
        CPUBackend(threads: 2, gemmLibrary: library).gemm(
          transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a.data, lda: k, b: b.data, ldb: n, beta: 0,
          c: c.data, ldc: n)
        return c.array()
      }
      XCTAssertEqual(product(), product(), "\(library)")
    }
  }

  /// oneDNN where its JIT has AVX2 kernels or better, OpenBLAS elsewhere, and the user's
  /// QUORUM_GEMM over both; a name it does not know is an error naming the variable.
  func testTheLibraryIsChosenFromTheCPUUnlessTheUserNamesOne() throws {
    XCTAssertEqual(try GEMMLibrary.choice(environment: [:], oneDNNHasAVX2: true), .oneDNN)
    XCTAssertEqual(try GEMMLibrary.choice(environment: [:], oneDNNHasAVX2: false), .openBLAS)
    XCTAssertEqual(try GEMMLibrary.choice(environment: ["QUORUM_GEMM": "openblas"], oneDNNHasAVX2: true), .openBLAS)
    XCTAssertEqual(try GEMMLibrary.choice(environment: ["QUORUM_GEMM": "oneDNN"], oneDNNHasAVX2: false), .oneDNN)
    XCTAssertThrowsError(try GEMMLibrary.choice(environment: ["QUORUM_GEMM": "mkl"])) { error in
      XCTAssert("\(error)".contains("QUORUM_GEMM=mkl"), "\(error)")
    }
    // This machine: an x86-64 CPU with AVX2 multiplies with oneDNN's fast kernels.
    #if arch(x86_64)
      if let flags = BLASCore.Features.ofThisMachine()?.flags, flags.contains("avx2"), flags.contains("fma") {
        XCTAssertTrue(GEMMLibrary.oneDNNHasAVX2Kernels, GEMMLibrary.oneDNNInstructions)
        if ProcessInfo.processInfo.environment["QUORUM_GEMM"] == nil { XCTAssertEqual(GEMMLibrary.inUse, .oneDNN) }
      }
    #endif
  }
}
