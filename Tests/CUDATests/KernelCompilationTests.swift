import CUDA
import Foundation
import QuorumTestSupport
import XCTest

/// Without a GPU: every kernel compiles with NVRTC for the A100's and the H100's
/// architectures, the compiled CUBINs are cached and re-used, and the loader's failures say
/// what is missing and what to do. (scripts/test.sh puts pip's NVRTC on LD_LIBRARY_PATH.)
final class KernelCompilationTests: XCTestCase {
  func nvrtc() throws -> NVRTC {
    do { return try NVRTC() } catch {
      XCTFail("\(error) — scripts/test.sh installs NVRTC (scripts/cuda-tools.sh) and puts it on LD_LIBRARY_PATH")
      throw error
    }
  }

  func testEveryKernelCompilesForSm80AndSm90() throws {
    let compiler = KernelCompiler(nvrtc: try nvrtc(), cacheFolder: nil)
    // Every file in Kernels/ is embedded and compiled: a kernel added there but not listed
    // in KernelSources would otherwise never be checked.
    let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Sources/CUDA/Kernels").standardized.path
    let files = try FileManager.default.contentsOfDirectory(atPath: folder)
    XCTAssertEqual(Set(KernelSources.all.map(\.file)), Set(files.filter { $0.hasSuffix(".cu") }))
    XCTAssertEqual(Set(KernelSources.headers.map(\.name)), Set(files.filter { $0.hasSuffix(".cuh") }))
    for architecture in ["sm_80", "sm_90"] {
      for source in KernelSources.all {
        // Warnings are errors, as for the emulator's C++ build of the same file.
        _ = try compiler.nvrtc.compile(
          source.text, name: source.file, architecture: architecture, headers: KernelSources.headers, options: ["-Werror=all-warnings"])
        let (cubin, cached) = try compiler.cubin(source, architecture: architecture)
        XCTAssertFalse(cached)
        XCTAssert(cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]), "\(source.file) for \(architecture) is not an ELF CUBIN")
        XCTAssertGreaterThan(cubin.count, 1000, source.file)
      }
    }
  }

  /// Compiled once per (source, architecture, NVRTC version); a torn cache file is
  /// recompiled rather than loaded.
  func testCUBINsAreCachedByArchitectureAndATornFileIsRecompiled() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let compiler = KernelCompiler(nvrtc: try nvrtc(), cacheFolder: folder)
    let source = KernelSources.all.first { $0.file == "dropout.cu" }!
    let first = try compiler.cubin(source, architecture: "sm_90")
    let second = try compiler.cubin(source, architecture: "sm_90")
    XCTAssertEqual([first.cached, second.cached], [false, true])
    XCTAssertEqual(first.bytes, second.bytes)
    XCTAssertNotEqual(compiler.cacheKey(source, architecture: "sm_80"), compiler.cacheKey(source, architecture: "sm_90"))
    let key = compiler.cacheKey(source, architecture: "sm_90")
    XCTAssert(key.hasPrefix("dropout-") && key.contains("-sm_90-nvrtc"), key)
    try Data([1, 2, 3]).write(to: URL(fileURLWithPath: folder + "/" + key))
    let rebuilt = try compiler.cubin(source, architecture: "sm_90")
    XCTAssertEqual(rebuilt.cached, false)
    XCTAssertEqual(rebuilt.bytes, first.bytes)
  }

  /// A cache folder that cannot be made (a file stands where a parent folder should be)
  /// costs start-up time, not the run: the kernels still compile, and the problem names the
  /// file in the way and the variable that moves the cache.
  func testACacheFolderThatCannotBeMadeIsNamedAndKernelsStillCompile() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try Data("not a folder".utf8).write(to: URL(fileURLWithPath: folder + "/blocker"))
    let compiler = KernelCompiler(nvrtc: try nvrtc(), cacheFolder: folder + "/blocker/kernels")
    let problem = try XCTUnwrap(compiler.cacheFolderProblem())
    XCTAssert(problem.contains("\(folder)/blocker is a file, not a folder") && problem.contains("QUORUM_KERNEL_CACHE"), problem)
    let source = KernelSources.all.first { $0.file == "dropout.cu" }!
    let first = try compiler.cubin(source, architecture: "sm_90")
    let second = try compiler.cubin(source, architecture: "sm_90")
    XCTAssertEqual([first.cached, second.cached], [false, false])
    XCTAssert(second.bytes.starts(with: [0x7F, 0x45, 0x4C, 0x46]))
    XCTAssertNil(KernelCompiler(nvrtc: try nvrtc(), cacheFolder: folder + "/fresh/kernels").cacheFolderProblem())
    var isFolder: ObjCBool = false
    XCTAssert(FileManager.default.fileExists(atPath: folder + "/fresh/kernels", isDirectory: &isFolder) && isFolder.boolValue)
  }

  func testACompilationErrorCarriesNVRTCsLog() throws {
    let nvrtc = try nvrtc()
    XCTAssertThrowsError(try nvrtc.compile("extern \"C\" __global__ void broken() { undeclared = 1; }", name: "broken.cu", architecture: "sm_90")) {
      let text = "\($0)"
      XCTAssert(text.contains("NVRTC could not compile broken.cu for sm_90") && text.contains("undeclared"), text)
    }
  }

  func testAMissingLibraryNamesWhatWasSearchedAndTheFix() {
    XCTAssertThrowsError(
      try DynamicLibrary.open("NVRTC", names: ["libnvrtc.so.99"], folders: ["/nonexistent/cuda/lib64"], hint: "pip install nvidia-cuda-nvrtc")
    ) {
      XCTAssertEqual(
        "\($0)",
        "NVRTC not found (tried libnvrtc.so.99 in /nonexistent/cuda/lib64 and the system paths): pip install nvidia-cuda-nvrtc")
    }
  }

  /// cuBLASLt missing (as in CI): the message names the file names tried and the pip
  /// package that provides it.
  func testAMissingCuBLASLtSaysWhereToGetIt() throws {
    guard CUBLASLt.libraryNames.allSatisfy({ dlopen($0, RTLD_NOW) == nil }) else {
      throw XCTSkip("cuBLASLt is installed on this machine: its missing-library message cannot be shown here (CI shows it)")
    }
    XCTAssertThrowsError(try CUBLASLt(folders: ["/nonexistent/cuda/lib64"])) {
      let text = "\($0)"
      XCTAssert(
        text.hasPrefix("cuBLASLt not found (tried libcublasLt.so.13, libcublasLt.so.12, libcublasLt.so in /nonexistent/cuda/lib64")
          && text.contains("pip install nvidia-cublas"), text)
    }
  }

  /// A library that opens but is not NVRTC (zlib): the first entry point missing is named.
  func testAMissingEntryPointIsNamed() throws {
    let zlib = try DynamicLibrary.open("NVRTC", names: ["libz.so.1"], folders: [], hint: "")
    XCTAssertThrowsError(try NVRTC(library: zlib)) {
      XCTAssertEqual($0 as? CUDAError, .symbolMissing(library: "NVRTC", path: "libz.so.1", symbol: "nvrtcGetErrorString"))
      XCTAssert("\($0)".contains("has no nvrtcGetErrorString"), "\($0)")
    }
  }

  /// The search covers CUDA_HOME, LD_LIBRARY_PATH and pip's nvidia/*/lib folders, in order.
  func testSearchFoldersFollowTheEnvironment() throws {
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try FileManager.default.createDirectory(atPath: folder + "/lib/python3.11/site-packages/nvidia/cu13/lib", withIntermediateDirectories: true)
    let folders = DynamicLibrary.searchFolders(environment: ["CUDA_HOME": "/opt/cuda", "LD_LIBRARY_PATH": "/a:/b", "VIRTUAL_ENV": folder])
    XCTAssertEqual(Array(folders.prefix(4)), ["/opt/cuda/lib64", "/opt/cuda/lib", "/a", "/b"])
    XCTAssert(folders.contains(folder + "/lib/python3.11/site-packages/nvidia/cu13/lib"), "\(folders)")
  }

  /// Where there is no driver (CI), the error says so and how to fix it; where there is
  /// one, it answers with its version.
  func testTheDriverLoadsOrSaysWhy() throws {
    do {
      let driver = try CUDADriverAPI()
      XCTAssertGreaterThan(try driver.driverVersion(), 0)
    } catch let error as CUDAError {
      guard case .libraryNotFound(let library, let names, _, let hint) = error else { return XCTFail("\(error)") }
      XCTAssertEqual(library, "the CUDA driver")
      XCTAssertEqual(names.first, "libcuda.so.1")
      XCTAssert(hint.contains("NVIDIA driver"), hint)
    }
  }
}
