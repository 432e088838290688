/// Everything that can go wrong between Quorum and the CUDA libraries, each case with what
/// was asked and what to do about it. Every CUDA call is checked in one place per library
/// (`CUDADriverAPI.check`, `NVRTC.check`), which turns its status code into one of these.
public enum CUDAError: Error, CustomStringConvertible, Equatable {
  /// None of the library's file names opened in any folder searched.
  case libraryNotFound(library: String, names: [String], searched: [String], hint: String)
  /// The library opened but lacks an entry point Quorum declares (too old a version).
  case symbolMissing(library: String, path: String, symbol: String)
  /// A call returned an error status.
  case call(name: String, status: Int32, message: String, hint: String)
  /// NVRTC rejected a kernel source: its log.
  case compilation(kernel: String, architecture: String, log: String)

  public var description: String {
    switch self {
    case .libraryNotFound(let library, let names, let searched, let hint):
      return "\(library) not found (tried \(names.joined(separator: ", ")) in \(searched.isEmpty ? "the system paths" : searched.joined(separator: ", ") + " and the system paths")): \(hint)"
    case .symbolMissing(let library, let path, let symbol):
      return "\(library) at \(path) has no \(symbol): it is older than Quorum needs (CUDA 12 or later)"
    case .call(let name, let status, let message, let hint):
      return "\(name) failed with error \(status) (\(message))" + (hint.isEmpty ? "" : ": \(hint)")
    case .compilation(let kernel, let architecture, let log):
      return "NVRTC could not compile \(kernel) for \(architecture):\n\(log)"
    }
  }
}
