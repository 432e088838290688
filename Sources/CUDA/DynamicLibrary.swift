import CUDAEmulator
import Foundation

/// A shared library opened at run time (nothing CUDA is linked at build time), and where
/// to look for it: `CUDA_HOME`, `LD_LIBRARY_PATH`, pip's `nvidia/*/lib` folders (the CUDA
/// wheels PyTorch installs), then the system paths through the dynamic linker. Or the
/// emulated device's stand-in for it (`emulated`): the same entry points by the same
/// names, so every caller runs unchanged on either.
public final class DynamicLibrary {
  public let name: String
  public let path: String
  private enum Symbols {
    case opened(UnsafeMutableRawPointer)
    /// The emulator's table for "cuda", "nvrtc" or "cublasLt".
    case emulated(String)
  }
  private let symbols: Symbols

  init(name: String, path: String, handle: UnsafeMutableRawPointer) {
    self.name = name
    self.path = path
    self.symbols = .opened(handle)
  }

  private init(name: String, emulating library: String) {
    self.name = name
    self.path = "the emulated CUDA device"
    self.symbols = .emulated(library)
  }

  /// The emulated device's stand-in for one of the three libraries: "cuda", "nvrtc" or
  /// "cublasLt" (Sources/CUDAEmulator).
  public static func emulated(_ name: String, library: String) -> DynamicLibrary {
    DynamicLibrary(name: name, emulating: library)
  }

  /// Whether this is the emulator's stand-in rather than a real library.
  public var isEmulated: Bool {
    if case .emulated = symbols { return true }
    return false
  }

  /// The folders searched before the system paths, in order, for an environment.
  public static func searchFolders(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
    var folders: [String] = []
    for variable in ["CUDA_HOME", "CUDA_PATH"] {
      if let home = environment[variable], !home.isEmpty { folders += [home + "/lib64", home + "/lib"] }
    }
    folders += (environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
    // pip's CUDA wheels: site-packages/nvidia/<component>/lib (CUDA 12: cuda_nvrtc, cublas,
    // …; CUDA 13: cu13), in a virtual environment, the user's and the system's Pythons.
    var sitePackages: [String] = []
    if let venv = environment["VIRTUAL_ENV"] { sitePackages += glob(venv + "/lib/python3*/site-packages") }
    if let home = environment["HOME"] { sitePackages += glob(home + "/.local/lib/python3*/site-packages") }
    sitePackages += glob("/usr/local/lib/python3*/dist-packages") + glob("/usr/local/lib/python3*/site-packages")
    sitePackages += glob("/usr/lib/python3/dist-packages") + glob("/opt/conda/lib/python3*/site-packages")
    for folder in sitePackages { folders += glob(folder + "/nvidia/*/lib") }
    var seen = Set<String>()
    return folders.filter { !$0.isEmpty && seen.insert($0).inserted }
  }

  /// Opens the first of `names` found in `folders`, then through the system's search.
  public static func open(
    _ library: String, names: [String], folders: [String] = searchFolders(), hint: String
  ) throws -> DynamicLibrary {
    for folder in folders {
      for name in names {
        let path = folder + "/" + name
        if FileManager.default.fileExists(atPath: path), let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) {
          return DynamicLibrary(name: library, path: path, handle: handle)
        }
      }
    }
    for name in names {
      if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return DynamicLibrary(name: library, path: name, handle: handle) }
    }
    throw CUDAError.libraryNotFound(library: library, names: names, searched: folders, hint: hint)
  }

  /// The entry point `symbol` as a C function of type `T`.
  public func function<T>(_ symbol: String, as type: T.Type = T.self) throws -> T {
    let found: UnsafeMutableRawPointer?
    switch symbols {
    case .opened(let handle): found = dlsym(handle, symbol)
    case .emulated(let library): found = quorum_emulator_symbol(library, symbol)
    }
    guard let address = found else { throw CUDAError.symbolMissing(library: name, path: path, symbol: symbol) }
    return unsafeBitCast(address, to: type)
  }

  static func glob(_ pattern: String) -> [String] {
    var result = glob_t()
    defer { globfree(&result) }
    guard Glibc.glob(pattern, 0, nil, &result) == 0 else { return [] }
    return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }.sorted()
  }
}
