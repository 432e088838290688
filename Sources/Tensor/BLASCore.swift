import COpenBLAS
import Foundation

/// Which of OpenBLAS's kernel sets ("cores") runs the GEMMs, and the choice made from the
/// CPU's features when OpenBLAS's own choice falls short of them.
///
/// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from a table of CPU
/// models. A model newer than the library's table falls back to an SSE3 core: Debian 12's
/// 0.3.21 runs its `Prescott` kernels on a family 6 model 207 Xeon (AVX-512), a third of
/// the GEMM speed its `SkylakeX` kernels give there (docs/compute-core.md). Cloud VMs get
/// new CPU models first. The table cannot be fixed from outside, but the kernel set can be
/// named: `OPENBLAS_CORETYPE`, read once as the library initialises, before `main`. So
/// `quorum` checks at its start and, when the core is weaker than the CPU's features allow
/// and the user set no `OPENBLAS_CORETYPE` of their own, runs itself again with the best
/// core the features allow (`restartWithBetterCoreIfNeeded`).
public enum BLASCore {
  /// The core in use: OpenBLAS's name for it.
  public static var current: String { String(cString: openblas_get_corename()) }

  /// The instruction-set level a core's kernels use: 1 SSE, 2 AVX, 3 AVX2 and FMA,
  /// 4 AVX-512. Nil for a name this table does not know (left alone).
  public static func level(of core: String) -> Int? {
    switch core.lowercased() {
    case "skylakex", "cooperlake", "sapphirerapids": return 4
    case "haswell", "zen", "dhyana", "excavator": return 3
    case "sandybridge", "bulldozer", "piledriver", "steamroller": return 2
    case "katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington", "nehalem",
      "athlon", "opteron", "opteron_sse3", "barcelona", "nano", "bobcat":
      return 1
    default: return nil
    }
  }

  /// The CPU's features as the kernel reports them (/proc/cpuinfo's flags: only those the
  /// operating system enables, so AVX-512 is absent where its registers are not saved).
  public struct Features: Sendable, Equatable {
    public var vendor: String
    public var flags: Set<String>

    public init(vendor: String, flags: Set<String>) {
      self.vendor = vendor
      self.flags = flags
    }

    /// This machine's, or nil where /proc/cpuinfo says nothing (not Linux on x86-64).
    public static func ofThisMachine() -> Features? {
      guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
      var vendor = ""
      var flags: Set<String> = []
      for line in text.split(separator: "\n") {
        let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2 else { continue }
        if parts[0] == "vendor_id" && vendor.isEmpty { vendor = parts[1] }
        if parts[0] == "flags" && flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
        if !vendor.isEmpty && !flags.isEmpty { break }
      }
      return flags.isEmpty ? nil : Features(vendor: vendor, flags: flags)
    }
  }

  /// The best core of Debian's OpenBLAS for these features (nil: none beyond SSE).
  /// AVX-512 needs the subsets SkylakeX's kernels use; Cooperlake adds bf16.
  public static func best(for features: Features) -> String? {
    let f = features.flags
    if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(f.contains) {
      return f.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
    }
    if f.contains("avx2") && f.contains("fma") { return features.vendor == "AuthenticAMD" ? "Zen" : "Haswell" }
    if f.contains("avx") { return "Sandybridge" }
    return nil
  }

  /// The core to run with instead of `detected`, or nil to keep it: a better one exists
  /// for these features, the detected core is one this table knows, and the user has not
  /// named a core (`OPENBLAS_CORETYPE` wins, whatever it says).
  public static func replacement(for detected: String, features: Features, environment: [String: String]) -> String? {
    guard environment["OPENBLAS_CORETYPE"] == nil, let best = best(for: features),
      let have = level(of: detected), let want = level(of: best), have < want
    else { return nil }
    return best
  }

  /// What OpenBLAS chose by itself before `restartWithBetterCoreIfNeeded` named a core
  /// (nil: OpenBLAS's own choice is in use, or the user's).
  public static var detectedBeforeRestart: String? { ProcessInfo.processInfo.environment[detectedVariable] }
  static let detectedVariable = "QUORUM_BLAS_DETECTED"

  /// Runs this executable again, same arguments, with `OPENBLAS_CORETYPE` set to the best
  /// core for the CPU's features when OpenBLAS's own choice is weaker (returns otherwise,
  /// and when the restart fails). Call first thing in `main`: nothing has run yet that a
  /// restart would repeat. (`QUORUM_FAULT_BLAS_CORE` pretends OpenBLAS chose that core: how
  /// the tests reach this path on a CPU that OpenBLAS knows.)
  public static func restartWithBetterCoreIfNeeded() {
    let environment = ProcessInfo.processInfo.environment
    let detected = environment["QUORUM_FAULT_BLAS_CORE"] ?? current
    guard let features = Features.ofThisMachine(),
      let better = replacement(for: detected, features: features, environment: environment)
    else { return }
    setenv("OPENBLAS_CORETYPE", better, 1)
    setenv(detectedVariable, detected, 1)
    unsetenv("QUORUM_FAULT_BLAS_CORE")
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    // Still here: the restart failed; train with what OpenBLAS chose.
    unsetenv("OPENBLAS_CORETYPE")
    unsetenv(detectedVariable)
  }

  /// One line on the kernels in use, for logs and `quorum doctor`: the core and how it was
  /// chosen, or why it is slower than this CPU allows.
  public static func summary() -> (line: String, weakerThanTheCPUAllows: Bool) {
    let core = current
    if let detected = detectedBeforeRestart {
      return ("OpenBLAS \(core) kernels (chosen from the CPU's features; OpenBLAS's own detection gave \(detected))", false)
    }
    let best = Features.ofThisMachine().flatMap(best(for:))
    if let best, let have = level(of: core), let want = level(of: best), have < want {
      let reason = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "OPENBLAS_CORETYPE=\($0) is set" } ?? "OpenBLAS chose them"
      return ("OpenBLAS \(core) kernels, slower than this CPU allows (\(best)): \(reason); unset OPENBLAS_CORETYPE or set it to \(best)", true)
    }
    return ("OpenBLAS \(core) kernels", false)
  }
}
