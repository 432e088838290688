import CUDA
import CUDAEmulator
import CUDAEmulatorFixtures
import Tensor
import XCTest

/// The checks the emulated device makes that a GPU does not, each seen to fire on a kernel
/// with the bug (Tests/CUDAEmulatorFixtures/BrokenKernels.cpp) or a bad argument.
final class EmulatorChecksTests: XCTestCase {
  static let device: CUDADevice = {
    quorum_emulator_register_broken_kernels()
    // Freed buffers really freed, so that the driver's use-after-free check has them.
    let device = try! CUDADevice.emulated(cachesFreedBuffers: false)
    try! device.load(Array("QUORUM-EMULATED-MODULE\0broken_kernels.cu\0".utf8), file: "broken_kernels.cu")
    return device
  }()
  var device: CUDADevice { Self.device }

  override func setUpWithError() throws {
    guard TestDevice.isEmulated else { throw XCTSkip("checks of the emulated device itself; QUORUM_TEST_DEVICE is \(TestDevice.choice)") }
  }

  func launchError(_ body: () throws -> Void) -> String {
    do {
      try body()
      return "no error"
    } catch { return "\(error)" }
  }

  func testNewAllocationsAreNaNAndAKernelReadingThemGivesNaN() throws {
    let fresh = try device.buffer(floats: 33)
    XCTAssert(try fresh.floats().allSatisfy(\.isNaN))
    // accumulate reads a and b: an unwritten b makes every sum NaN.
    let a = try device.buffer([Float](repeating: 1, count: 33))
    try device.launch("accumulate", grid: 2, block: 32, [.buffer(a), .buffer(fresh), .long(33)])
    XCTAssert(try a.floats().allSatisfy(\.isNaN))
  }

  func testAHostPointerOrAFreedBufferPassedToALaunchIsRefused() throws {
    let a = try device.buffer([Float](repeating: 1, count: 8))
    var host = [Float](repeating: 2, count: 8)
    let hostAddress = host.withUnsafeMutableBufferPointer { UInt64(UInt(bitPattern: $0.baseAddress!)) }
    let hostError = launchError { try device.launch("accumulate", grid: 1, block: 8, [.buffer(a), .address(hostAddress), .long(8)]) }
    XCTAssert(hostError.contains("cuLaunchKernel(accumulate") && hostError.contains("parameter 1 is host memory, not device memory"), hostError)
    var freedAddress: UInt64 = 0
    do {
      let freed = try device.buffer([Float](repeating: 3, count: 8))
      freedAddress = freed.address
    }
    let freedError = launchError { try device.launch("accumulate", grid: 1, block: 8, [.buffer(a), .address(freedAddress), .long(8)]) }
    XCTAssert(freedError.contains("parameter 1 is a freed device buffer"), freedError)
    XCTAssertEqual(try a.floats(), [Float](repeating: 1, count: 8), "a refused launch must not run")
    host[0] = 0
  }

  func testARaceIsCaughtByTheReversedSchedule() throws {
    let values = try device.buffer((0..<65).map(Float.init))
    let error = launchError { try device.launch("racy_neighbour_sum", file: "broken_kernels.cu", grid: 1, block: 64, [.buffer(values), .int(65)]) }
    XCTAssert(error.contains("racy_neighbour_sum: a race") && error.contains("reverse order"), error)
    // A correct kernel run with the same check passes, bit for bit.
    let a = try device.buffer((0..<65).map(Float.init))
    let b = try device.buffer([Float](repeating: 0.5, count: 65))
    try device.launch("accumulate", grid: 3, block: 32, [.buffer(a), .buffer(b), .long(65)])
    XCTAssertEqual(try a.floats(), (0..<65).map { Float($0) + 0.5 })
  }

  func testABarrierReachedByPartOfABlockIsReported() throws {
    let values = try device.buffer(floats: 64)
    let error = launchError { try device.launch("partial_barrier", file: "broken_kernels.cu", grid: 1, block: 64, [.buffer(values)]) }
    XCTAssert(error.contains("__syncthreads reached by only 32 of the 64 threads of block (0, 0, 0)"), error)
  }

  func testAShuffleMaskNamingLanesThatAreNotThereIsReported() throws {
    let values = try device.buffer([Float](repeating: 1, count: 16))
    let error = launchError { try device.launch("short_warp_shuffle", file: "broken_kernels.cu", grid: 1, block: 16, [.buffer(values)]) }
    XCTAssert(error.contains("mask 0xffffffff names lanes that are not there") && error.contains("0x0000ffff"), error)
  }

  func testABarrierInAKernelRegisteredAsALoopIsReported() throws {
    let values = try device.buffer(floats: 32)
    let error = launchError { try device.launch("barrier_in_loop_kernel", file: "broken_kernels.cu", grid: 1, block: 32, [.buffer(values)]) }
    XCTAssert(error.contains("calls __syncthreads but is registered to run as a plain loop"), error)
  }

  func testWarpShufflesExchangeValuesAsOnAGPU() throws {
    let input = (0..<64).map { Float($0 % 7) }
    let values = try device.buffer(input)
    let sums = try device.buffer(floats: 64)
    try device.launch("warp_sum_fixture", file: "broken_kernels.cu", grid: 1, block: 64, [.buffer(values), .buffer(sums)])
    let first = input[0..<32].reduce(0, +), second = input[32..<64].reduce(0, +)
    XCTAssertEqual(try sums.floats(), [Float](repeating: first, count: 32) + [Float](repeating: second, count: 32))
  }

  /// The reductions' launch rules are asserted by the kernels: 100 threads once gave a
  /// wrong mean with no error, 512 wrote past their shared array, and a grid other than one
  /// block per channel left channels unwritten.
  func testReductionLaunchRulesAreAsserted() throws {
    let x = try device.buffer((0..<(50 * 3)).map { Float($0) })
    let mean = try device.buffer(floats: 3), variance = try device.buffer(floats: 3)
    for (grid, block, rule) in [(3, 100, "a power of two"), (3, 512, "at most 256"), (2, 128, "one block per channel")] {
      let error = launchError {
        try device.launch("batchnorm_statistics", grid: grid, block: block, [.buffer(x), .int(50), .int(3), .buffer(mean), .buffer(variance)])
      }
      XCTAssert(error.contains("batchnorm_statistics: needs") && error.contains(rule) && error.contains("error 710"), "\(grid)×\(block): \(error)")
    }
    let logits = try device.buffer(floats: 40), labels = try device.buffer([Int32](repeating: 0, count: 4))
    let error = launchError {
      try device.launch(
        "softmax_cross_entropy", grid: 1, block: 48,
        [.buffer(logits), .buffer(labels), .buffer(nil), .buffer(nil), .buffer(logits), .buffer(logits), .int(4), .int(10), .float(0), .float(0), .buffer(logits), .buffer(logits)])
    }
    XCTAssert(error.contains("softmax_cross_entropy: needs whole warps"), error)
  }

  func testTheEmulatedNVRTCRefusesASourceItHasNoCPUBuildOf() throws {
    XCTAssertThrowsError(try NVRTC.emulated().compile("extern \"C\" __global__ void k() {}", name: "new_kernel.cu", architecture: "sm_90")) {
      XCTAssert("\($0)".contains("no CPU build of this file"), "\($0)")
    }
  }

  func testOutOfDeviceMemoryIsAnErrorNamingTheSize() throws {
    let (_, total) = try device.memoryInformation()
    let floats = total / 4 + 1024
    XCTAssertThrowsError(try device.buffer(floats: floats)) {
      let text = "\($0)"
      XCTAssert(text.contains("cuMemAlloc(\(floats * 4) bytes) failed with error 2") && text.contains("out of GPU memory"), text)
      XCTAssert(text.contains("\(floats * 4) bytes asked, ") && text.contains(" of emulated device 0's \(total) free"), text)
    }
  }

  /// Every kernel of every kernel file has its CPU build, registered under the file's
  /// name (Sources/CUDAEmulator/Kernels.cpp): a kernel added to a .cu file but not there
  /// fails here.
  func testEveryKernelOfEveryFileRunsOnTheEmulatedDevice() throws {
    var count = 0
    for source in KernelSources.all {
      let names = KernelSources.kernelNames(in: source)
      XCTAssertFalse(names.isEmpty, source.file)
      for name in names {
        XCTAssertNoThrow(try device.function(name, file: source.file), "\(source.file): \(name)")
        count += 1
      }
    }
    XCTAssertGreaterThan(count, 25)
  }

  /// Kernels the model calls in place (dx = dy) must not promise the compiler that those
  /// operands do not alias: batchnorm_backward_input once marked both __restrict__.
  func testKernelsCalledInPlaceDeclareNoRestrictOnTheAliasedOperands() throws {
    let inPlace: [(file: String, kernel: String, operands: [String])] = [
      ("batchnorm_backward.cu", "batchnorm_backward_input", ["dy", "dx"]),
      ("batchnorm_backward.cu", "batchnorm_inference_backward", ["dy", "dx"]),
    ]
    for (file, kernel, operands) in inPlace {
      let source = try XCTUnwrap(KernelSources.all.first { $0.file == file }).text
      let start = try XCTUnwrap(source.range(of: "void \(kernel)("), kernel)
      let signature = source[start.upperBound...].prefix { $0 != ")" }
      for operand in operands {
        let declaration = signature.components(separatedBy: ",").first { $0.hasSuffix(" " + operand) || $0.hasSuffix("*" + operand) }
        let text = try XCTUnwrap(declaration, "\(kernel) has no parameter \(operand)")
        XCTAssertFalse(text.contains("__restrict__"), "\(kernel): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
      }
    }
  }

  /// cuBLASLt's statuses by their real numbers (13 is EXECUTION_FAILED and 15
  /// NOT_SUPPORTED; the hint once called 13 "no algorithm"), and a GEMM the library
  /// refuses reaches the user with the hint for the status it returned.
  func testCuBLASLtStatusesAreNamedByTheirRealNumbers() throws {
    XCTAssert(CUBLASLt.statusHints[15]?.contains("no algorithm") == true)
    XCTAssertFalse(CUBLASLt.statusHints[13]?.contains("no algorithm") ?? true)
    let blas = try CUBLASLt.emulated()
    let a = try device.buffer([Float](repeating: 1, count: 16)), c = try device.buffer(floats: 16)
    // A leading dimension shorter than a row: cuBLASLt's INVALID_VALUE.
    XCTAssertThrowsError(
      try blas.gemm(
        transposeA: false, transposeB: false, m: 4, n: 4, k: 4, alpha: 1, a: a.address, lda: 2, b: a.address, ldb: 4, beta: 0, c: c.address,
        ldc: 4, stream: device.stream)
    ) {
      let text = "\($0)"
      XCTAssert(text.contains("error 7") && text.contains(CUBLASLt.statusHints[7]!), text)
    }
  }

  /// Streams order work and events time it, as the driver's do.
  func testEventsTimeWorkOnAStream() throws {
    let driver = device.driver
    let (start, end) = (try driver.createEvent(), try driver.createEvent())
    defer { driver.destroy(event: start); driver.destroy(event: end) }
    let a = try device.buffer([Float](repeating: 1, count: 4096)), b = try device.buffer([Float](repeating: 2, count: 4096))
    try driver.record(start, on: device.stream)
    try device.launch("accumulate", grid: 4, block: 128, [.buffer(a), .buffer(b), .long(4096)])
    try driver.record(end, on: device.stream)
    XCTAssertGreaterThanOrEqual(try driver.elapsed(from: start, to: end), 0)
    XCTAssertEqual(try a.floats(3), [3, 3, 3])
  }

  /// A context is current per thread, as on a GPU: a thread that has not made the device's
  /// context current cannot allocate or launch (error 201, saying so), and `CUDADevice`
  /// binds it on whichever thread uses the device (a worker builds its backend on one thread
  /// and trains on another).
  func testAThreadWithoutTheContextCannotUseTheDeviceAndTheDeviceBindsIt() throws {
    /// What the other thread saw, read after it has finished.
    final class Seen: @unchecked Sendable { var raw = "", bound = "", sum: [Float] = [] }
    let seen = Seen()
    let device = self.device
    let thread = Thread {
      do { _ = try device.driver.allocate(bytes: 64) } catch { seen.raw = "\(error)" }
      do {
        let a = try device.buffer([Float](repeating: 1, count: 33)), b = try device.buffer([Float](repeating: 2, count: 33))
        try device.launch("accumulate", grid: 2, block: 32, [.buffer(a), .buffer(b), .long(33)])
        seen.sum = try a.floats()
        seen.bound = "no error"
      } catch { seen.bound = "\(error)" }
    }
    thread.start()
    while !thread.isFinished { Thread.sleep(forTimeInterval: 0.01) }
    let (raw, bound, sum) = (seen.raw, seen.bound, seen.sum)
    XCTAssert(raw.contains("cuMemAlloc(64 bytes) failed with error 201") && raw.contains("no CUDA context is current on this thread"), raw)
    XCTAssertEqual(bound, "no error")
    XCTAssertEqual(sum, [Float](repeating: 3, count: 33))
  }

  /// With QUORUM_EMULATOR_DEVICES = 2 the driver shows two GPUs, as a machine with two
  /// would (what `cuda:all` serves): each with its own context and its own memory, and a
  /// buffer of one refused by a launch under the other's context (no peer access), so a
  /// member whose buffers strayed to another GPU fails here, not silently on a real pair.
  func testTwoEmulatedGPUsHaveTheirOwnContextsAndMemoryAndRefuseEachOthersBuffers() throws {
    quorum_emulator_set_device_count(2)
    defer { quorum_emulator_set_device_count(1) }
    XCTAssertEqual(try ComputeDevice.allGPUs(emulated: true).devices(), [.cudaEmulated, .cuda(ordinal: 1, emulated: true)])
    XCTAssertNil(ComputeDevice.cuda(ordinal: 1, emulated: true).unavailability())
    XCTAssert(ComputeDevice.cuda(ordinal: 2, emulated: true).unavailability()?.contains("no GPU 2 (this machine has 2: cuda-emulated:0…cuda-emulated:1)") == true)
    let second = try CUDADevice.emulated(1)
    XCTAssertEqual(second.ordinal, 1)
    try second.makeCurrent()
    let (freeBefore, _) = try second.driver.memoryInformation()
    let onFirst = try device.buffer([Float](repeating: 1, count: 1 << 16))
    try second.makeCurrent()
    XCTAssertEqual(try second.driver.memoryInformation().free, freeBefore, "an allocation on GPU 0 leaves GPU 1's memory alone")
    let onSecond = try second.buffer([Float](repeating: 2, count: 1 << 16))
    XCTAssertEqual(try second.driver.memoryInformation().free, freeBefore - (1 << 18))
    // One thread, both devices, alternately: each launch runs under its own device's context.
    try device.launch("accumulate", grid: 4, block: 256, [.buffer(onFirst), .buffer(onFirst), .long(1 << 16)])
    try second.launch("accumulate", grid: 4, block: 256, [.buffer(onSecond), .buffer(onSecond), .long(1 << 16)])
    XCTAssertEqual(try onFirst.floats().prefix(3), [2, 2, 2])
    XCTAssertEqual(try onSecond.floats().prefix(3), [4, 4, 4])
    let stray = launchError { try second.launch("accumulate", grid: 4, block: 256, [.buffer(onSecond), .buffer(onFirst), .long(1 << 16)]) }
    XCTAssert(stray.contains("parameter 1 is a device buffer of emulated device 0, used under device 1's context"), stray)
    XCTAssertEqual(try onSecond.floats().prefix(3), [4, 4, 4], "a refused launch must not run")
  }

  /// A recorded step (a CUDA graph) may hold launches, device copies and memsets only: a
  /// read-back, an upload or a synchronisation inside a recording fails on the thread that
  /// records, naming the call, and invalidates the recording, as a GPU's thread-local
  /// capture does; the backend keeps that failure like any other.
  func testAReadBackOrAnUploadInsideARecordingFailsAndNamesTheCall() throws {
    for (what, call) in [("download", "cuMemcpyDtoHAsync"), ("upload", "cuMemcpyHtoDAsync"), ("synchronize", "cuStreamSynchronize")] {
      let backend = try CUDABackend.emulated()
      let tensor = backend.makeTensor(shape: [4])
      let recording = backend.record {
        backend.fill(tensor, with: 2)
        switch what {
        case "download": _ = backend.download(tensor)
        case "upload": backend.upload([1, 2, 3, 4], to: tensor)
        default: backend.synchronize()
        }
      }
      XCTAssertNil(recording, what)
      let error = launchError { try backend.check() }
      XCTAssert(error.contains(call) && error.contains("while this thread captures a stream into a CUDA graph"), "\(what): \(error)")
    }
    // A recording that holds only device work replays it, as often as asked.
    let backend = try CUDABackend.emulated()
    let (a, b) = (backend.makeTensor(shape: [3], values: [1, 2, 3]), backend.makeTensor(shape: [3], values: [10, 20, 30]))
    let recording = try XCTUnwrap(backend.record { backend.accumulate(a, b, count: 3) })
    XCTAssertEqual(backend.download(a), [1, 2, 3])
    backend.replay(recording)
    backend.replay(recording)
    XCTAssertEqual(backend.download(a), [21, 42, 63])
    try backend.check()
  }
}
