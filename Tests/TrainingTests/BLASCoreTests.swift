import Foundation
import QuorumTestSupport
import Tensor
import XCTest

/// The GEMM kernels `quorum` runs with: never weaker than the CPU's features allow unless
/// the user asks, whatever OpenBLAS's table of CPU models knows (GEMMLibraryTests: which
/// library multiplies).
final class BLASCoreTests: XCTestCase {
  let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

  /// The case of issue 18: a Xeon newer than OpenBLAS 0.3.21's table gets its SSE3
  /// `Prescott` kernels; its features allow SkylakeX's (Cooperlake's with bf16).
  func testACoreBelowTheCPUsFeaturesIsReplacedByTheBestTheyAllow() {
    let intel = BLASCore.Features(vendor: "GenuineIntel", flags: avx512)
    XCTAssertEqual(BLASCore.replacement(for: "Prescott", features: intel, environment: [:]), "SkylakeX")
    XCTAssertEqual(BLASCore.replacement(for: "Haswell", features: intel, environment: [:]), "SkylakeX")
    var bf16 = intel
    bf16.flags.insert("avx512_bf16")
    XCTAssertEqual(BLASCore.replacement(for: "Prescott", features: bf16, environment: [:]), "Cooperlake")
    let amd = BLASCore.Features(vendor: "AuthenticAMD", flags: ["sse3", "avx", "avx2", "fma"])
    XCTAssertEqual(BLASCore.replacement(for: "Nehalem", features: amd, environment: [:]), "Zen")
    // AVX-512 without the subsets SkylakeX's kernels use (Knights Landing) is not enough.
    let knights = BLASCore.Features(vendor: "GenuineIntel", flags: ["avx", "avx2", "fma", "avx512f", "avx512cd"])
    XCTAssertEqual(BLASCore.replacement(for: "Prescott", features: knights, environment: [:]), "Haswell")
  }

  func testTheUsersChoiceAGoodChoiceAndUnknownCoresAreLeftAlone() {
    let intel = BLASCore.Features(vendor: "GenuineIntel", flags: avx512)
    XCTAssertNil(BLASCore.replacement(for: "Prescott", features: intel, environment: ["OPENBLAS_CORETYPE": "Prescott"]))
    XCTAssertNil(BLASCore.replacement(for: "SkylakeX", features: intel, environment: [:]))
    XCTAssertNil(BLASCore.replacement(for: "Cooperlake", features: intel, environment: [:]), "better than the features' best")
    XCTAssertNil(BLASCore.replacement(for: "NeoverseN1", features: intel, environment: [:]), "a name this table does not know")
    XCTAssertNil(BLASCore.replacement(for: "Prescott", features: .init(vendor: "GenuineIntel", flags: ["sse3"]), environment: [:]))
  }

  /// The kernels `quorum` itself runs with on this machine are the best its features
  /// allow, as `quorum doctor` reports them: oneDNN's AVX2 or better where they exist, and
  /// OpenBLAS's (the stacker's, and the fallback) never below the CPU's best core (here
  /// OpenBLAS may or may not know the CPU).
  func testQuorumRunsTheBestKernelsThisCPUAllows() throws {
    let doctor = try runQuorum(["doctor", "--device", "cpu"])
    func line(_ check: String) throws -> String {
      let found = doctor.output.split(separator: "\n").first { $0.split(separator: " ").dropFirst().first == Substring(check) }
      return try String(XCTUnwrap(found, "no \(check) line: \(doctor.output)"))
    }
    let gemm = try line("GEMM")
    XCTAssert(gemm.hasPrefix("ok"), gemm)
    if GEMMLibrary.oneDNNHasAVX2Kernels { XCTAssert(gemm.contains("oneDNN"), gemm) }
    let openBLAS = try line("OpenBLAS")
    XCTAssert(openBLAS.hasPrefix("ok"), openBLAS)
    if let features = BLASCore.Features.ofThisMachine(), let best = BLASCore.best(for: features) {
      let core = try XCTUnwrap(openBLAS.split(separator: " ").first { BLASCore.level(of: String($0)) != nil }.map(String.init), openBLAS)
      XCTAssertGreaterThanOrEqual(BLASCore.level(of: core)!, BLASCore.level(of: best)!, openBLAS)
    }
  }

  /// OpenBLAS named over oneDNN's faster kernels is the user's to choose, and doctor says
  /// what it costs; a library Quorum does not know stops `quorum` before anything runs.
  func testAUsersGEMMLibraryIsKeptAndAnUnknownOneRefused() throws {
    let doctor = try runQuorum(["doctor", "--device", "cpu"], environment: ["QUORUM_GEMM": "openblas"])
    let gemm = try XCTUnwrap(doctor.output.split(separator: "\n").first { $0.contains("GEMM") }.map(String.init), doctor.output)
    XCTAssert(gemm.contains("OpenBLAS"), gemm)
    if GEMMLibrary.oneDNNHasAVX2Kernels {
      XCTAssert(gemm.hasPrefix("warning") && gemm.contains("QUORUM_GEMM=openblas is set"), gemm)
    }
    let refused = try runQuorum(["doctor", "--device", "cpu"], environment: ["QUORUM_GEMM": "mkl"])
    XCTAssertNotEqual(refused.status, 0)
    XCTAssert(refused.output.contains("QUORUM_GEMM=mkl"), refused.output)
  }

  /// Where OpenBLAS's own detection falls short (pretended here: this machine's CPU may be
  /// in its table), `quorum` runs again with the best core, says so, and passes it on.
  func testQuorumRestartsWithTheBestCoreWhenOpenBLASFallsBack() throws {
    let features = try XCTUnwrap(BLASCore.Features.ofThisMachine(), "no /proc/cpuinfo")
    let best = try XCTUnwrap(BLASCore.best(for: features), "an x86-64 CPU without AVX")
    // (scripts/test.sh names a core for the tests' process: a user's choice, which this
    // quorum must not inherit.)
    let doctor = try runQuorum(
      ["doctor", "--device", "cpu"], environment: ["QUORUM_FAULT_BLAS_CORE": "Prescott"], unsetting: ["OPENBLAS_CORETYPE"])
    XCTAssert(
      doctor.output.contains("OpenBLAS \(best) kernels (chosen from the CPU's features; OpenBLAS's own detection gave Prescott)"),
      doctor.output)
  }

  /// A core the user names wins, and doctor says what it costs.
  func testAUsersWeakerCoreIsKeptWithAWarning() throws {
    let features = try XCTUnwrap(BLASCore.Features.ofThisMachine(), "no /proc/cpuinfo")
    let best = try XCTUnwrap(BLASCore.best(for: features), "an x86-64 CPU without AVX")
    let doctor = try runQuorum(["doctor", "--device", "cpu"], environment: ["OPENBLAS_CORETYPE": "Prescott"])
    let line = try XCTUnwrap(doctor.output.split(separator: "\n").first { $0.contains("Prescott kernels") }, doctor.output)
    XCTAssert(line.hasPrefix("warning"), String(line))
    XCTAssert(line.contains("Prescott kernels, slower than this CPU allows (\(best)): OPENBLAS_CORETYPE=Prescott is set"), String(line))
  }
}
