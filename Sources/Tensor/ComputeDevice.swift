/// Where a worker or `quorum train` computes: the one spelling of a device that the command
/// line (`--device`), an experiment file (`device:`) and a worker's hello share. Turning
/// one into a `Backend` is the CUDA module's (`ComputeDevice.makeBackend`).
public enum ComputeDevice: Equatable, Sendable, CustomStringConvertible {
  /// The CPU backend (OpenBLAS and Quorum's own kernels).
  case cpu
  /// The CUDA backend on the emulated device: the kernels run on the CPU, with the
  /// emulator's checks. For proving the CUDA path without a GPU, not for speed.
  case cudaEmulated
  /// The CUDA backend on GPU `ordinal`.
  case cuda(ordinal: Int)
  /// The CPU, unless the machine's GPUs are asked for by name (see docs/cuda.md for when
  /// `auto` will choose a GPU).
  case automatic

  /// The spellings accepted everywhere a device is named.
  public static let spellings = "cpu, auto, cuda, cuda:N or cuda-emulated"

  /// Parses "cpu", "auto", "cuda" (GPU 0), "cuda:N" or "cuda-emulated"; nil otherwise.
  public init?(_ text: String) {
    switch text {
    case "cpu": self = .cpu
    case "auto": self = .automatic
    case "cuda": self = .cuda(ordinal: 0)
    case "cuda-emulated": self = .cudaEmulated
    default:
      guard text.hasPrefix("cuda:"), let ordinal = Int(text.dropFirst(5)), ordinal >= 0 else { return nil }
      self = .cuda(ordinal: ordinal)
    }
  }

  public var description: String {
    switch self {
    case .cpu: return "cpu"
    case .automatic: return "auto"
    case .cudaEmulated: return "cuda-emulated"
    case .cuda(let ordinal): return "cuda:\(ordinal)"
    }
  }

  /// Whether this device runs the CUDA backend (a GPU or the emulated one).
  public var isCUDA: Bool {
    switch self {
    case .cuda, .cudaEmulated: return true
    case .cpu, .automatic: return false
    }
  }
}
