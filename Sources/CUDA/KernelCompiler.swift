import Data
import Files
import Foundation

/// Compiles kernel sources to CUBINs with NVRTC, caching each on disk under
/// (source hash, architecture, NVRTC version): a worker compiles once per GPU model and
/// toolkit, then starts in milliseconds. A damaged cache file is recompiled, not trusted.
public struct KernelCompiler {
  public let nvrtc: NVRTC
  /// nil: no cache.
  public let cacheFolder: String?

  /// `$QUORUM_KERNEL_CACHE`, else `$XDG_CACHE_HOME/quorum/kernels`, else `~/.cache/quorum/kernels`.
  public static func defaultCacheFolder(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
    if let folder = environment["QUORUM_KERNEL_CACHE"] { return folder.isEmpty ? nil : folder }
    if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/quorum/kernels" }
    return environment["HOME"].map { $0 + "/.cache/quorum/kernels" }
  }

  public init(nvrtc: NVRTC, cacheFolder: String? = KernelCompiler.defaultCacheFolder()) {
    self.nvrtc = nvrtc
    // The emulator's "CUBINs" name CPU builds: nothing worth caching, and nothing that may
    // ever reach a real GPU's cache.
    self.cacheFolder = nvrtc.library.isEmulated ? nil : cacheFolder
  }

  /// The cache file's name for a source: its hash (with the headers'), the architecture
  /// and NVRTC's version.
  public func cacheKey(_ source: KernelSources.Source, architecture: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
    for byte in (source.text + KernelSources.headers.map(\.text).joined()).utf8 {
      hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
    }
    let stem = source.file.replacingOccurrences(of: ".cu", with: "")
    return "\(stem)-\(String(hash, radix: 16))-\(architecture)-nvrtc\(nvrtc.version.major).\(nvrtc.version.minor).cubin"
  }

  /// The CUBIN of `source` for `architecture`, from the cache or freshly compiled.
  public func cubin(_ source: KernelSources.Source, architecture: String) throws -> (bytes: [UInt8], cached: Bool) {
    let path = cacheFolder.map { $0 + "/" + cacheKey(source, architecture: architecture) }
    // A CUBIN is an ELF file: anything else in the cache (a torn write) is recompiled.
    if let path, let bytes = FileManager.default.contents(atPath: path), bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]) {
      return ([UInt8](bytes), true)
    }
    let bytes = try nvrtc.compile(source.text, name: source.file, architecture: architecture, headers: KernelSources.headers)
    if let path, let problem = store(bytes, at: path) { KernelCompiler.warnOnce(problem) }
    return (bytes, false)
  }

  /// Why the cache folder cannot hold CUBINs (it cannot be created, is a file, or cannot be
  /// written), in words a user can act on; nil when it can, or when there is no cache.
  /// Creates the folder when it is missing.
  public func cacheFolderProblem() -> String? {
    guard let folder = cacheFolder else { return nil }
    if let problem = KernelCompiler.createFolder(folder) { return problem }
    guard access(folder, W_OK) == 0 else {
      return "the kernel cache folder \(folder) cannot be written: \(String(cString: strerror(errno)))"
        + KernelCompiler.cacheAdvice
    }
    return nil
  }

  static let cacheAdvice = "; kernels compile again at every start (set QUORUM_KERNEL_CACHE to a writable folder, or to nothing to turn the cache off)"

  /// Writes a CUBIN beside its cache path, then renames it into place, so that a reader
  /// never sees half a file. Returns the problem when the cache could not take it.
  func store(_ bytes: [UInt8], at path: String) -> String? {
    guard let folder = cacheFolder else { return nil }
    if let problem = KernelCompiler.createFolder(folder) { return problem }
    let temporary = path + ".\(getpid()).tmp"
    guard FileManager.default.createFile(atPath: temporary, contents: Data(bytes)) else {
      return "the kernel cache folder \(folder) cannot be written (\(String(cString: strerror(errno))))" + KernelCompiler.cacheAdvice
    }
    guard rename(temporary, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(temporary)
      return "cannot store \(path) in the kernel cache (\(reason))" + KernelCompiler.cacheAdvice
    }
    return nil
  }

  /// `Folders.create`, its failure turned into the cache's warning.
  static func createFolder(_ folder: String) -> String? {
    do { try Folders.create(folder) } catch { return "the kernel cache: \(error)" + cacheAdvice }
    return nil
  }

  /// A cache that cannot be written costs start-up time, not correctness: said once per
  /// process on standard error, not thrown.
  static func warnOnce(_ problem: String) {
    warnedLock.lock()
    defer { warnedLock.unlock() }
    guard !warned else { return }
    warned = true
    FileHandle.standardError.write(Data("quorum: warning: \(problem)\n".utf8))
  }
  nonisolated(unsafe) private static var warned = false
  private static let warnedLock = NSLock()
}
