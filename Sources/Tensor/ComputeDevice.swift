/// Where a worker or `quorum train` computes: the one spelling of a device that the command
/// line (`--device`), an experiment file (`device:`) and a worker's hello share. Turning
/// one into a `Backend`, and `cuda:all` into the machine's GPUs, is the CUDA module's
/// (`ComputeDevice.makeBackend`, `ComputeDevice.devices`).
public enum ComputeDevice: Hashable, Sendable, CustomStringConvertible {
  /// The CPU backend (OpenBLAS and Quorum's own kernels).
  case cpu
  /// The CUDA backend on GPU `ordinal` of the machine's driver, or, `emulated`, on the
  /// emulated device's GPU `ordinal`: the kernels run on the CPU, with the emulator's
  /// checks (for proving the CUDA path without a GPU, not for speed).
  case cuda(ordinal: Int, emulated: Bool = false)
  /// Every GPU the driver (or the emulated driver) shows: a worker serves each.
  case allGPUs(emulated: Bool = false)
  /// The CPU, unless the machine's GPUs are asked for by name (see docs/cuda.md for when
  /// `auto` will choose a GPU).
  case automatic

  /// The emulated device's first GPU ("cuda-emulated").
  public static let cudaEmulated = ComputeDevice.cuda(ordinal: 0, emulated: true)

  /// The spellings accepted everywhere a device is named.
  public static let spellings = "cpu, auto, cuda, cuda:N, cuda:all, or cuda-emulated (cuda-emulated:N, cuda-emulated:all)"

  /// Parses "cpu", "auto", "cuda" (GPU 0), "cuda:N", "cuda:all", and the same with
  /// "cuda-emulated"; nil otherwise.
  public init?(_ text: String) {
    switch text {
    case "cpu": self = .cpu
    case "auto": self = .automatic
    default:
      let emulated = text.hasPrefix("cuda-emulated")
      let rest = text.dropFirst(emulated ? "cuda-emulated".count : text.hasPrefix("cuda") ? "cuda".count : text.count)
      if text.hasPrefix("cuda") && rest.isEmpty {
        self = .cuda(ordinal: 0, emulated: emulated)
      } else if rest == ":all" {
        self = .allGPUs(emulated: emulated)
      } else if rest.hasPrefix(":"), let ordinal = Int(rest.dropFirst()), ordinal >= 0, !rest.dropFirst().hasPrefix("+") {
        self = .cuda(ordinal: ordinal, emulated: emulated)
      } else {
        return nil
      }
    }
  }

  public var description: String {
    switch self {
    case .cpu: return "cpu"
    case .automatic: return "auto"
    case .cuda(0, true): return "cuda-emulated"
    case .cuda(let ordinal, let emulated): return "\(emulated ? "cuda-emulated" : "cuda"):\(ordinal)"
    case .allGPUs(let emulated): return "\(emulated ? "cuda-emulated" : "cuda"):all"
    }
  }

  /// Whether this device runs the CUDA backend (a GPU or the emulated one).
  public var isCUDA: Bool {
    switch self {
    case .cuda, .allGPUs: return true
    case .cpu, .automatic: return false
    }
  }

  /// Whether this names several devices (`cuda:all`), which a command training one model
  /// refuses.
  public var isSeveralDevices: Bool {
    if case .allGPUs = self { return true }
    return false
  }

  /// Whether this is the emulated device (or some of its GPUs).
  public var isEmulated: Bool {
    switch self {
    case .cuda(_, let emulated), .allGPUs(let emulated): return emulated
    case .cpu, .automatic: return false
    }
  }
}
