import CUDA
import Data
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Wire
import XCTest

/// Every operation of the Backend contract run by the CUDA kernels and cuBLASLt on the
/// emulated device (or the GPU of `QUORUM_TEST_DEVICE`), against its CPU twin in CPUBackend, on fresh random inputs of odd sizes
/// (strides 1 and 2, channels not a multiple of 8 or 32, batch 1), with every output
/// poisoned (NaN) before the run. Tolerances are stated per operation, relative to the
/// largest value of the CPU's result: float32 sums in another order differ by ~1e-7 per
/// term; a GPU differs from the emulator only by code generation (FMA contraction, the
/// approximate rsqrtf), which these tolerances allow for.
final class KernelParityTests: XCTestCase {
  static let operations = try! TestDevice.backend().operations
  var operations: DeviceOperations { Self.operations }
  var device: CUDADevice { Self.operations.device }
  static let cpu = CPUBackend(threads: 1)
  var cpu: CPUBackend { Self.cpu }

  /// Summation-order differences only (GEMMs, reductions).
  let sums: Float = 2e-5
  /// Element-wise arithmetic, rsqrtf and expf included.
  let elementwise: Float = 1e-5

  // MARK: Helpers

  func upload(_ tensor: Tensor) throws -> DeviceBuffer { try device.buffer(tensor.array()) }

  /// A fresh output: device allocations are NaN-filled, so a value the kernel does not
  /// write stays NaN and fails the comparison.
  func poisoned(_ count: Int) throws -> DeviceBuffer {
    let buffer = try device.buffer(floats: count)
    try buffer.fill(.nan)
    return buffer
  }

  func assertClose(
    _ device: DeviceBuffer, _ expected: Tensor, count: Int? = nil, tolerance: Float, _ what: String, file: StaticString = #filePath,
    line: UInt = #line
  ) throws {
    let n = count ?? expected.capacity
    let actual = try device.floats(n)
    let reference = expected.array(count: n)
    let scale = max(reference.map(abs).max() ?? 0, 1e-6)
    var worst: Float = 0
    var worstIndex = 0
    for i in 0..<n {
      if actual[i].isNaN != reference[i].isNaN {
        XCTFail("\(what): index \(i) is \(actual[i]) on the device, \(reference[i]) on the CPU", file: file, line: line)
        return
      }
      let difference = abs(actual[i] - reference[i])
      if difference > worst { (worst, worstIndex) = (difference, i) }
    }
    XCTAssertLessThanOrEqual(
      worst / scale, tolerance, "\(what): index \(worstIndex): \(actual[worstIndex]) against \(reference[worstIndex]) (scale \(scale))",
      file: file, line: line)
  }

  func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

  // MARK: Matrix products

  func testGEMMWithEveryTransposeAndOddLeadingDimensions() throws {
    let (m, n, k) = (37, 13, 29)
    for (transposeA, transposeB) in [(false, false), (true, false), (false, true), (true, true)] {
      let lda = (transposeA ? m : k) + 3, ldb = (transposeB ? k : n) + 2, ldc = n + 5
      let a = randomTensor([(transposeA ? k : m) * lda], seed: 1), b = randomTensor([(transposeB ? n : k) * ldb], seed: 2)
      let c = randomTensor([m * ldc], seed: 3)
      let (deviceA, deviceB, deviceC) = (try upload(a), try upload(b), try upload(c))
      cpu.gemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda, b: b.data, ldb: ldb, beta: 0.3,
        c: c.data, ldc: ldc)
      try operations.gemm(
        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.7, a: deviceA, lda: lda, b: deviceB, ldb: ldb, beta: 0.3,
        c: deviceC, ldc: ldc)
      try assertClose(deviceC, c, tolerance: sums, "gemm transposeA \(transposeA) transposeB \(transposeB)")
    }
  }

  func testABiasInHostMemoryIsRefusedByTheEmulatedCuBLASLt() throws {
    let a = try device.buffer([Float](repeating: 1, count: 4)), c = try device.buffer(floats: 4)
    var host: [Float] = [1, 2]
    let address = host.withUnsafeMutableBufferPointer { UInt64(UInt(bitPattern: $0.baseAddress!)) }
    XCTAssertThrowsError(
      try operations.blas.gemm(
        transposeA: false, transposeB: false, m: 2, n: 2, k: 2, alpha: 1, a: a.address, lda: 2, b: a.address, ldb: 2, beta: 0, c: c.address,
        ldc: 2, epilogue: .bias, bias: address, stream: device.stream)
    ) { XCTAssert("\($0)".contains("error 7") && "\($0)".contains("host memory"), "\($0)") }
    host[0] = 0
  }

  /// What the emulated cuBLASLt does not implement (here the GELU epilogue) it refuses with
  /// cuBLASLt's own NOT_SUPPORTED (15), as the real library does when no algorithm fits.
  func testAnUnsupportedEpilogueGetsNotSupported() throws {
    typealias Create = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Int32
    typealias SetAttribute = @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Int32
    typealias Layout = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Int32
    typealias Preference = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias Heuristic = @convention(c) (
      OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32,
      UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>
    ) -> Int32
    let library = DynamicLibrary.emulated("cuBLASLt", library: "cublasLt")
    let createHandle: Preference = try library.function("cublasLtCreate")
    let create: Create = try library.function("cublasLtMatmulDescCreate")
    let set: SetAttribute = try library.function("cublasLtMatmulDescSetAttribute")
    let layout: Layout = try library.function("cublasLtMatrixLayoutCreate")
    let preference: Preference = try library.function("cublasLtMatmulPreferenceCreate")
    let heuristic: Heuristic = try library.function("cublasLtMatmulAlgoGetHeuristic")
    var (handle, operation, matrix, options): (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?) = (nil, nil, nil, nil)
    XCTAssertEqual(createHandle(&handle), 0)
    XCTAssertEqual(create(&operation, 68, 0), 0)
    var gelu: UInt32 = 32
    XCTAssertEqual(set(operation, 7, &gelu, 4), 0)
    XCTAssertEqual(layout(&matrix, 0, 4, 4, 4), 0)
    XCTAssertEqual(preference(&options), 0)
    var result = [UInt8](repeating: 0, count: 96)
    var returned: Int32 = -1
    let status = result.withUnsafeMutableBytes { heuristic(handle, operation, matrix, matrix, matrix, matrix, options, 1, $0.baseAddress!, &returned) }
    XCTAssertEqual(status, 15)
    XCTAssertEqual(returned, 0)
  }

  // MARK: Convolutions

  func geometries(channels: Int) -> [ImageGeometry] {
    [ImageGeometry(batch: 3, height: 11, width: 9, channels: channels), ImageGeometry(batch: 1, height: 7, width: 6, channels: channels)]
  }

  func testStemConvolutionForwardAndBackward() throws {
    for geometry in geometries(channels: 3) {
      for stride in [1, 2] {
        let outputChannels = 13
        let out = geometry.convolved3x3(stride: stride, channels: outputChannels)
        let x = randomTensor([geometry.count], seed: 4), w = randomTensor([outputChannels * 9 * geometry.channels], seed: 5)
        let dy = randomTensor([out.count], seed: 6)
        let (y, columns, dx, dw) = (Tensor(shape: [out.count]), Tensor(shape: [out.rows * 9 * 3]), Tensor(shape: [geometry.count]), Tensor(shape: [w.capacity]))
        cpu.convolution3x3Forward(input: x, geometry, weight: w, stride: stride, output: y, outputChannels: outputChannels, columns: columns)
        let (deviceX, deviceW, deviceDY) = (try upload(x), try upload(w), try upload(dy))
        let (deviceY, deviceColumns) = (try poisoned(out.count), try poisoned(columns.capacity))
        try operations.convolution3x3Forward(
          input: deviceX, geometry, weight: deviceW, stride: stride, output: deviceY, outputChannels: outputChannels, columns: deviceColumns)
        try assertClose(deviceY, y, tolerance: sums, "stem forward \(geometry) stride \(stride)")
        cpu.convolution3x3Backward(
          inputGradient: dx, geometry, weight: w, stride: stride, outputGradient: dy, outputChannels: outputChannels, columns: columns,
          weightGradient: dw)
        let (deviceDX, deviceDW) = (try poisoned(dx.capacity), try poisoned(dw.capacity))
        try operations.convolution3x3Backward(
          inputGradient: deviceDX, geometry, weight: deviceW, stride: stride, outputGradient: deviceDY, outputChannels: outputChannels,
          columns: deviceColumns, weightGradient: deviceDW)
        try assertClose(deviceDW, dw, tolerance: sums, "stem weight gradient \(geometry) stride \(stride)")
        try assertClose(deviceDX, dx, tolerance: sums, "stem input gradient \(geometry) stride \(stride)")
        // Adjoint: ⟨conv(x), dy⟩ = ⟨x, convᵀ(dy)⟩, on the device's own results.
        let forward = dot(try deviceY.floats(out.count), dy.array())
        let adjoint = dot(x.array(), try deviceDX.floats(geometry.count))
        XCTAssertEqual(forward, adjoint, accuracy: 1e-4 * max(abs(forward), 1), "stem adjoint \(geometry) stride \(stride)")
      }
    }
  }

  func testDepthwiseForwardAndBackward() throws {
    for geometry in geometries(channels: 37) {
      for stride in [1, 2] {
        let out = geometry.convolved3x3(stride: stride, channels: geometry.channels)
        let x = randomTensor([geometry.count], seed: 7), w = randomTensor([9 * geometry.channels], seed: 8)
        let dy = randomTensor([out.count], seed: 9)
        let (y, dx, dw) = (Tensor(shape: [out.count]), Tensor(shape: [geometry.count]), Tensor(shape: [w.capacity]))
        cpu.depthwiseForward(input: x, geometry, weight: w, stride: stride, output: y)
        cpu.depthwiseBackward(input: x, geometry, weight: w, stride: stride, outputGradient: dy, inputGradient: dx, weightGradient: dw)
        let (deviceX, deviceW, deviceDY) = (try upload(x), try upload(w), try upload(dy))
        let (deviceY, deviceDX, deviceDW) = (try poisoned(out.count), try poisoned(dx.capacity), try poisoned(dw.capacity))
        try operations.depthwiseForward(input: deviceX, geometry, weight: deviceW, stride: stride, output: deviceY)
        try operations.depthwiseBackward(
          input: deviceX, geometry, weight: deviceW, stride: stride, outputGradient: deviceDY, inputGradient: deviceDX, weightGradient: deviceDW)
        try assertClose(deviceY, y, tolerance: elementwise, "depthwise forward \(geometry) stride \(stride)")
        try assertClose(deviceDX, dx, tolerance: elementwise, "depthwise input gradient \(geometry) stride \(stride)")
        try assertClose(deviceDW, dw, tolerance: sums, "depthwise weight gradient \(geometry) stride \(stride)")
        let forward = dot(try deviceY.floats(out.count), dy.array())
        let adjoint = dot(x.array(), try deviceDX.floats(geometry.count))
        XCTAssertEqual(forward, adjoint, accuracy: 1e-4 * max(abs(forward), 1), "depthwise adjoint \(geometry) stride \(stride)")
      }
    }
  }

  // MARK: Batch normalisation

  func testBatchNormTrainingForwardBackwardAndInference() throws {
    for (rows, channels) in [(3 * 11 * 9, 37), (1 * 5 * 3, 13)] {
      for activation in [Activation.relu6, .none] {
        let count = rows * channels
        let x = randomTensor([count], seed: 10, scale: 2, offset: 0.5), dy = randomTensor([count], seed: 11)
        let scale = randomTensor([channels], seed: 12, scale: 0.3, offset: 1), shift = randomTensor([channels], seed: 13, scale: 0.5)
        let (y, mean, variance) = (Tensor(shape: [count]), Tensor(shape: [channels]), Tensor(shape: [channels]))
        cpu.batchNormTrainingForward(
          input: x, rows: rows, channels: channels, scale: scale, shift: shift, epsilon: 1e-5, activation: activation, output: y, batchMean: mean,
          batchVariance: variance)
        let (deviceX, deviceScale, deviceShift) = (try upload(x), try upload(scale), try upload(shift))
        let (deviceY, deviceMean, deviceVariance) = (try poisoned(count), try poisoned(channels), try poisoned(channels))
        try operations.batchNormTrainingForward(
          input: deviceX, rows: rows, channels: channels, scale: deviceScale, shift: deviceShift, epsilon: 1e-5, activation: activation,
          output: deviceY, batchMean: deviceMean, batchVariance: deviceVariance)
        let what = "batch norm \(rows)×\(channels) \(activation)"
        try assertClose(deviceMean, mean, tolerance: sums, "\(what) mean")
        try assertClose(deviceVariance, variance, tolerance: sums, "\(what) variance")
        try assertClose(deviceY, y, tolerance: 1e-4, "\(what) output")

        // Backward in place (dx = dy), as the model calls it.
        let gradient = Tensor(shape: [count])
        gradient.copy(from: dy)
        let (dScale, dShift) = (Tensor(shape: [channels]), Tensor(shape: [channels]))
        cpu.batchNormBackward(
          input: x, output: y, rows: rows, channels: channels, scale: scale, batchMean: mean, batchVariance: variance, epsilon: 1e-5,
          activation: activation, outputGradient: gradient, inputGradient: gradient, scaleGradient: dScale, shiftGradient: dShift)
        let deviceGradient = try upload(dy)
        let (deviceDScale, deviceDShift) = (try poisoned(channels), try poisoned(channels))
        // The device backward reads its own forward (mask and statistics), the CPU's its own.
        try operations.batchNormBackward(
          input: deviceX, output: deviceY, rows: rows, channels: channels, scale: deviceScale, batchMean: deviceMean,
          batchVariance: deviceVariance, epsilon: 1e-5, activation: activation, outputGradient: deviceGradient, inputGradient: deviceGradient,
          scaleGradient: deviceDScale, shiftGradient: deviceDShift)
        try assertClose(deviceDShift, dShift, tolerance: 1e-4, "\(what) shift gradient")
        try assertClose(deviceDScale, dScale, tolerance: 1e-4, "\(what) scale gradient")
        try assertClose(deviceGradient, gradient, tolerance: 1e-4, "\(what) input gradient (in place)")

        // Evaluation mode with running statistics, and its input gradient (Grad-CAM).
        let runningMean = randomTensor([channels], seed: 14, scale: 0.2), runningVariance = randomTensor([channels], seed: 15, scale: 0.1, offset: 1)
        let inference = Tensor(shape: [count])
        cpu.batchNormInferenceForward(
          input: x, rows: rows, channels: channels, scale: scale, shift: shift, runningMean: runningMean, runningVariance: runningVariance,
          epsilon: 1e-5, activation: activation, output: inference)
        let deviceInference = try poisoned(count)
        let (deviceRunningMean, deviceRunningVariance) = (try upload(runningMean), try upload(runningVariance))
        try operations.batchNormInferenceForward(
          input: deviceX, rows: rows, channels: channels, scale: deviceScale, shift: deviceShift, runningMean: deviceRunningMean,
          runningVariance: deviceRunningVariance, epsilon: 1e-5, activation: activation, output: deviceInference)
        try assertClose(deviceInference, inference, tolerance: elementwise, "\(what) inference")
        let inferenceGradient = Tensor(shape: [count])
        inferenceGradient.copy(from: dy)
        cpu.batchNormInferenceBackward(
          output: inference, rows: rows, channels: channels, scale: scale, runningVariance: runningVariance, epsilon: 1e-5,
          activation: activation, outputGradient: inferenceGradient, inputGradient: inferenceGradient)
        let deviceInferenceGradient = try upload(dy)
        try operations.batchNormInferenceBackward(
          output: deviceInference, rows: rows, channels: channels, scale: deviceScale, runningVariance: deviceRunningVariance, epsilon: 1e-5,
          activation: activation, outputGradient: deviceInferenceGradient, inputGradient: deviceInferenceGradient)
        try assertClose(deviceInferenceGradient, inferenceGradient, tolerance: elementwise, "\(what) inference input gradient")
      }
    }
  }

  /// A channel with mean 1000 and standard deviation 1: E[x²] − E[x]² from float sums lost
  /// the variance entirely; both backends must find it to 1e-3.
  func testBatchNormVarianceIsStableFarFromZero() throws {
    let (rows, channels) = (4096, 3)
    let x = randomTensor([rows * channels], seed: 16)
    for row in 0..<rows { x[row * channels + 1] += 1000 }
    let exact: [Double] = (0..<channels).map { c in
      let values = (0..<rows).map { Double(x[$0 * channels + c]) }
      let mean = values.reduce(0, +) / Double(rows)
      return values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rows)
    }
    let (y, mean, variance) = (Tensor(shape: [x.capacity]), Tensor(shape: [channels]), Tensor(shape: [channels]))
    let ones = Tensor(shape: [channels], values: [1, 1, 1]), zeros = Tensor(shape: [channels])
    cpu.batchNormTrainingForward(
      input: x, rows: rows, channels: channels, scale: ones, shift: zeros, epsilon: 1e-5, activation: .none, output: y, batchMean: mean,
      batchVariance: variance)
    let (deviceMean, deviceVariance) = (try poisoned(channels), try poisoned(channels))
    try operations.batchNormTrainingForward(
      input: try upload(x), rows: rows, channels: channels, scale: try upload(ones), shift: try upload(zeros), epsilon: 1e-5, activation: .none,
      output: try poisoned(x.capacity), batchMean: deviceMean, batchVariance: deviceVariance)
    let onDevice = try deviceVariance.floats()
    for c in 0..<channels {
      XCTAssertEqual(Double(variance[c]), exact[c], accuracy: 1e-3 * exact[c], "CPU variance of channel \(c)")
      XCTAssertEqual(Double(onDevice[c]), exact[c], accuracy: 1e-3 * exact[c], "device variance of channel \(c)")
    }
    XCTAssertEqual(mean[1], 1000, accuracy: 0.1)
  }

  // MARK: Element-wise and pooling

  func testResidualScaleSamplesAndAccumulate() throws {
    let (batch, sampleSize) = (3, 5 * 7 * 13)
    let count = batch * sampleSize
    let x = randomTensor([count], seed: 17), branch = randomTensor([count], seed: 18)
    let sampleScale = Tensor(shape: [batch], values: [0, 1.25, 1.25])
    for scale in [nil, sampleScale] {
      let y = Tensor(shape: [count])
      cpu.residualForward(input: x, branch: branch, sampleScale: scale, batch: batch, sampleSize: sampleSize, output: y)
      let deviceY = try poisoned(count)
      try operations.residualForward(
        input: try upload(x), branch: try upload(branch), sampleScale: try scale.map(upload), batch: batch, sampleSize: sampleSize, output: deviceY)
      try assertClose(deviceY, y, tolerance: elementwise, "residual, sample scale \(scale == nil ? "none" : "0/1.25")")
    }
    let scaled = Tensor(shape: [count])
    cpu.scaleSamples(x, sampleScale: sampleScale, batch: batch, sampleSize: sampleSize, output: scaled)
    let deviceScaled = try poisoned(count)
    try operations.scaleSamples(try upload(x), sampleScale: try upload(sampleScale), batch: batch, sampleSize: sampleSize, output: deviceScaled)
    try assertClose(deviceScaled, scaled, tolerance: elementwise, "scale samples")
    let deviceSum = try upload(x)
    cpu.accumulate(x, branch, count: count)
    try operations.accumulate(deviceSum, try upload(branch), count: count)
    try assertClose(deviceSum, x, tolerance: elementwise, "accumulate")
  }

  func testGlobalAveragePoolAndItsAdjoint() throws {
    for geometry in geometries(channels: 37) {
      let x = randomTensor([geometry.count], seed: 19), dy = randomTensor([geometry.batch * geometry.channels], seed: 20)
      let (y, dx) = (Tensor(shape: [dy.capacity]), Tensor(shape: [geometry.count]))
      cpu.globalAveragePoolForward(input: x, geometry, output: y)
      cpu.globalAveragePoolBackward(outputGradient: dy, geometry, inputGradient: dx)
      let (deviceY, deviceDX) = (try poisoned(y.capacity), try poisoned(dx.capacity))
      try operations.globalAveragePoolForward(input: try upload(x), geometry, output: deviceY)
      try operations.globalAveragePoolBackward(outputGradient: try upload(dy), geometry, inputGradient: deviceDX)
      try assertClose(deviceY, y, tolerance: sums, "pool forward \(geometry)")
      try assertClose(deviceDX, dx, tolerance: elementwise, "pool backward \(geometry)")
      let forward = dot(try deviceY.floats(y.capacity), dy.array()), adjoint = dot(x.array(), try deviceDX.floats(geometry.count))
      XCTAssertEqual(forward, adjoint, accuracy: 1e-5 * max(abs(forward), 1), "pool adjoint \(geometry)")
    }
  }

  func testStemIm2colAndCol2imAreAdjoint() throws {
    let geometry = ImageGeometry(batch: 2, height: 9, width: 7, channels: 3)
    for stride in [1, 2] {
      let out = geometry.convolved3x3(stride: stride, channels: 1)
      let x = randomTensor([geometry.count], seed: 21), columnsGradient = randomTensor([out.rows * 27], seed: 22)
      let (columns, dx) = (try poisoned(columnsGradient.capacity), try poisoned(geometry.count))
      let shape: [KernelArgument] = [.int(geometry.batch), .int(geometry.height), .int(geometry.width), .int(geometry.channels), .int(stride), .int(out.height), .int(out.width)]
      try device.launch("im2col3x3", grid: 8, block: 64, [.buffer(try upload(x))] + shape + [.buffer(columns)])
      try device.launch("col2im3x3", grid: 8, block: 64, [.buffer(try upload(columnsGradient))] + shape + [.buffer(dx)])
      let forward = dot(try columns.floats(columnsGradient.capacity), columnsGradient.array())
      let adjoint = dot(x.array(), try dx.floats(geometry.count))
      XCTAssertEqual(forward, adjoint, accuracy: 1e-4 * max(abs(forward), 1), "im2col adjoint, stride \(stride)")
    }
  }

  func testDropoutDrawsTheCPUsMasks() throws {
    let count = 1000
    let x = randomTensor([count], seed: 23), gradient = randomTensor([count], seed: 24)
    let seed: UInt64 = 0xDEAD_BEEF_0123
    let hostStep = Tensor(shape: [1], values: [Float(bitPattern: 77)])
    let (mask, y) = (Tensor(shape: [count]), Tensor(shape: [count]))
    cpu.dropoutForward(input: x, count: count, dropProbability: 0.3, seed: seed, stream: DeviceScalar(hostStep, index: 0), mask: mask, output: y)
    let (deviceMask, deviceY) = (try poisoned(count), try poisoned(count))
    let deviceStep = DeviceWord(try device.buffer([Float(bitPattern: 77)]), index: 0)
    try operations.dropoutForward(
      input: try upload(x), count: count, dropProbability: 0.3, seed: seed, stream: deviceStep, mask: deviceMask, output: deviceY)
    XCTAssertEqual(try deviceMask.floats(), mask.array(), "the same units dropped, the same scale kept")
    XCTAssertEqual(try deviceY.floats(), y.array())
    let deviceGradient = try upload(gradient)
    cpu.dropoutBackward(gradient: gradient, count: count, mask: mask)
    try operations.dropoutBackward(gradient: deviceGradient, count: count, mask: deviceMask)
    XCTAssertEqual(try deviceGradient.floats(), gradient.array())
  }

  // MARK: Classifier and loss

  func testLinearForwardAndBackward() throws {
    for batch in [1, 5] {
      let (inputs, outputs) = (37, 11)
      let x = randomTensor([batch * inputs], seed: 25), w = randomTensor([outputs * inputs], seed: 26), bias = randomTensor([outputs], seed: 27)
      let dy = randomTensor([batch * outputs], seed: 28)
      let (y, dx, dw, db) = (Tensor(shape: [batch * outputs]), Tensor(shape: [batch * inputs]), Tensor(shape: [w.capacity]), Tensor(shape: [outputs]))
      cpu.linearForward(input: x, batch: batch, inputFeatures: inputs, weight: w, bias: bias, outputFeatures: outputs, output: y)
      cpu.linearBackward(
        input: x, batch: batch, inputFeatures: inputs, weight: w, outputFeatures: outputs, outputGradient: dy, inputGradient: dx,
        weightGradient: dw, biasGradient: db)
      let (deviceX, deviceW) = (try upload(x), try upload(w))
      let (deviceY, deviceDX, deviceDW, deviceDB) = (try poisoned(y.capacity), try poisoned(dx.capacity), try poisoned(dw.capacity), try poisoned(outputs))
      try operations.linearForward(input: deviceX, batch: batch, inputFeatures: inputs, weight: deviceW, bias: try upload(bias), outputFeatures: outputs, output: deviceY)
      try operations.linearBackward(
        input: deviceX, batch: batch, inputFeatures: inputs, weight: deviceW, outputFeatures: outputs, outputGradient: try upload(dy),
        inputGradient: deviceDX, weightGradient: deviceDW, biasGradient: deviceDB)
      try assertClose(deviceY, y, tolerance: sums, "linear forward, batch \(batch)")
      try assertClose(deviceDX, dx, tolerance: sums, "linear input gradient, batch \(batch)")
      try assertClose(deviceDW, dw, tolerance: sums, "linear weight gradient, batch \(batch)")
      try assertClose(deviceDB, db, tolerance: sums, "linear bias gradient, batch \(batch)")
    }
  }

  /// Every variant of the loss the trainer uses, loss and gradient. The soft-target case
  /// with smoothing and class weights is the defect the emulator found: the kernel applied
  /// no smoothing to soft targets and weighted each example by labels[n] (loss 3.17
  /// against the CPU's 4.04).
  func testSoftmaxCrossEntropyInEveryVariant() throws {
    let (batch, classes) = (7, 37)
    let logits = randomTensor([batch * classes], seed: 29, scale: 3)
    let labels: [Int32] = [0, 36, 5, 5, 17, 2, 31]
    let weights = randomTensor([classes], seed: 30, scale: 0.4, offset: 1.2)
    let adjustment = randomTensor([classes], seed: 31, scale: 0.5)
    let soft = Tensor(shape: [batch * classes])
    for n in 0..<batch {
      // Two labels mixed, as mixup makes them.
      soft[n * classes + Int(labels[n])] += 0.7
      soft[n * classes + (Int(labels[n]) + 3) % classes] += 0.3
    }
    let variants: [(String, CrossEntropyOptions)] = [
      ("plain", CrossEntropyOptions()),
      ("smoothing 0.1", CrossEntropyOptions(labelSmoothing: 0.1)),
      ("class weights", CrossEntropyOptions(classWeights: weights)),
      ("logit adjustment", CrossEntropyOptions(logitAdjustment: adjustment)),
      ("focal γ 2 with weights", CrossEntropyOptions(labelSmoothing: 0.05, classWeights: weights, focalGamma: 2)),
      ("soft targets + smoothing 0.1 + class weights", CrossEntropyOptions(labelSmoothing: 0.1, classWeights: weights, softTargets: soft)),
      ("soft targets, focal γ 1.5", CrossEntropyOptions(focalGamma: 1.5, softTargets: soft)),
    ]
    let (deviceLogits, deviceLabels) = (try upload(logits), try device.buffer(labels))
    let workspace = try DeviceOperations.LossWorkspace(device: device, batch: batch)
    for (what, options) in variants {
      let gradient = Tensor(shape: [batch * classes])
      let loss = labels.withUnsafeBufferPointer {
        cpu.softmaxCrossEntropy(logits: logits, labels: $0.baseAddress!, batch: batch, classes: classes, options: options, logitGradient: gradient)
      }
      let deviceGradient = try poisoned(batch * classes)
      try workspace.loss.fill(.nan)
      try operations.softmaxCrossEntropy(
        logits: deviceLogits, labels: deviceLabels, batch: batch, classes: classes, labelSmoothing: options.labelSmoothing,
        classWeights: try options.classWeights.map(upload), logitAdjustment: try options.logitAdjustment.map(upload),
        focalGamma: options.focalGamma, softTargets: try options.softTargets.map(upload), logitGradient: deviceGradient, workspace: workspace)
      let deviceLoss = try workspace.loss.floats(1)[0]
      XCTAssertEqual(Double(deviceLoss), loss, accuracy: 1e-5 * max(loss, 1), "\(what): loss")
      try assertClose(deviceGradient, gradient, tolerance: 1e-5, "\(what): gradient")
    }
  }

  // MARK: Optimizers

  func parameter(_ name: String, count: Int, decays: Bool, seed: UInt64) -> Parameter {
    let parameter = Parameter(name: name, shape: [count], decays: decays, backend: cpu)
    parameter.value.copy(from: randomTensor([count], seed: seed))
    parameter.gradient.copy(from: randomTensor([count], seed: seed + 1, scale: 0.1))
    return parameter
  }

  func testSGDAndAdamWStepsMatchTheCPUOptimizers() throws {
    let parameters = [parameter("conv.weight", count: 301, decays: true, seed: 40), parameter("bn.weight", count: 37, decays: false, seed: 42)]
    let deviceWeights = try parameters.map { try upload($0.value) }
    let deviceGradients = try parameters.map { try upload($0.gradient) }
    let sgd = SGD(parameters: parameters, momentum: 0.9, nesterov: true, weightDecay: 5e-4, backend: cpu)
    let velocities = try parameters.map { try device.buffer([Float](repeating: 0, count: $0.count)) }
    // The momentum moves from step to step too (one-cycle's cycling).
    for (step, momentum) in [Float(0.95), 0.9, 0.85].enumerated() {
      let learningRate = Float(0.1) / Float(step + 1)
      sgd.prepare(learningRate: learningRate, momentum: momentum)
      sgd.update(parameters)
      let scalars = try device.buffer([learningRate, momentum])
      for (index, parameter) in parameters.enumerated() {
        try operations.sgdStep(
          weight: deviceWeights[index], gradient: deviceGradients[index], velocity: velocities[index], count: parameter.count,
          learningRate: DeviceWord(scalars, index: 0), momentum: DeviceWord(scalars, index: 1), decay: parameter.decays ? 5e-4 : 0,
          nesterov: true)
        try assertClose(deviceWeights[index], parameter.value, tolerance: 1e-6, "SGD step \(step) of \(parameter.name)")
      }
    }
    let adam = AdamW(parameters: parameters, weightDecay: 0.05, backend: cpu)
    let moments = try parameters.map { p in try (device.buffer([Float](repeating: 0, count: p.count)), device.buffer([Float](repeating: 0, count: p.count))) }
    for step in 1...3 {
      adam.step(parameters, learningRate: 0.01)
      for (index, parameter) in parameters.enumerated() {
        let (correction1, correction2) = (1 - Float(pow(Double(Float(0.9)), Double(step))), 1 - Float(pow(Double(Float(0.999)), Double(step))))
        let scalars = try device.buffer([0.01 / correction1, correction2.squareRoot(), 1 - 0.01 * 0.05])
        try operations.adamWStep(
          weight: deviceWeights[index], gradient: deviceGradients[index], first: moments[index].0, second: moments[index].1, count: parameter.count,
          beta1: 0.9, beta2: 0.999, epsilon: 1e-8, decayFactor: parameter.decays ? DeviceWord(scalars, index: 2) : nil,
          stepSize: DeviceWord(scalars, index: 0), rootCorrection2: DeviceWord(scalars, index: 1))
        try assertClose(deviceWeights[index], parameter.value, tolerance: 1e-6, "AdamW step \(step) of \(parameter.name)")
      }
    }
  }

  // MARK: Precision

  /// bfloat16 conversions agree with the wire's bit for bit, NaN included (the kernel kept
  /// NaN payloads while the wire writes PyTorch's 0x7FC0).
  func testBFloat16ConversionsAgreeWithTheWireBitForBit() throws {
    var values = randomTensor([997], seed: 50, scale: 1e3).array()
    values += [0, -0, .infinity, -.infinity, .nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC1_2345), Float(bitPattern: 0x3F80_8000),
      Float(bitPattern: 0x3F81_8000), .greatestFiniteMagnitude, .leastNonzeroMagnitude]
    let halves = try device.buffer([UInt16](repeating: 0, count: values.count))
    try operations.floatToBFloat16(try device.buffer(values), count: values.count, output: halves)
    XCTAssertEqual(try halves.halves(values.count), values.map(Precision.toBFloat16))
    let all = (0...UInt16.max).map { $0 }
    let back = try poisoned(all.count)
    try operations.bfloat16ToFloat(try device.buffer(all), count: all.count, output: back)
    XCTAssertEqual(try back.floats().map(\.bitPattern), all.map { Precision.fromBFloat16($0).bitPattern })
  }

  // MARK: Batches

  /// The device's batch from held 8-bit images is the host assembler's bit for bit: odd
  /// sizes (13×11×3 and 28×28×1), shifts that cross the border, flips, erasing, virtual
  /// indices past the end, and a fixed test-time transform.
  func testAssemblingABatchFromHeldImagesGivesTheHostsBatch() throws {
    for (height, width, channels) in [(13, 11, 3), (28, 28, 1)] {
      let count = 7
      var pixels = [UInt8](repeating: 0, count: count * height * width * channels)
      for i in pixels.indices { pixels[i] = UInt8((i * 7919 + 13) % 256) }
      let dataset = ImageDataset(
        pixels: pixels, labels: (0..<count).map { Int32($0 % 3) }, height: height, width: width, channels: channels, classes: 3)
      let statistics = dataset.channelStatistics()
      let assembler = BatchAssembler(mean: statistics.mean, std: statistics.std, threads: 1)
      let indices = [3, 0, 6, 9, 15, 1, 2, 5, 4][...]
      let augmentation = Augmentation(shift: 4, horizontalFlip: 0.5, erasing: 0.7)
      let held = try device.buffer(pixels)
      let normalization = try device.buffer(assembler.normalization)
      for fixed in [nil, (dy: -2, dx: 1, flip: true)] as [(dy: Int, dx: Int, flip: Bool)?] {
        let expected = Tensor(shape: [indices.count, height, width, channels])
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: indices.count)
        defer { labels.deallocate() }
        assembler.assemble(dataset, indices: indices, augmentation: augmentation, seed: 9, epoch: 2, images: expected, labels: labels, fixed: fixed)
        let expectedLabels = Array(UnsafeBufferPointer(start: labels, count: indices.count))
        var plan = [Int32](repeating: -1, count: 8 * indices.count)
        plan.withUnsafeMutableBufferPointer {
          assembler.plan(dataset, indices: indices, augmentation: augmentation, seed: 9, epoch: 2, plan: $0.baseAddress!, labels: labels, fixed: fixed)
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: labels, count: indices.count)), expectedLabels)
        XCTAssert(fixed != nil || plan.enumerated().contains { $0.offset % 8 == 6 && $0.element > 0 }, "some example is erased")
        XCTAssert(fixed != nil || plan.enumerated().contains { $0.offset % 8 == 3 && $0.element == 1 }, "some example is flipped")
        let images = try poisoned(expected.capacity)
        try operations.assembleImages(
          from: held, plan: try device.buffer(plan), batch: indices.count, height: height, width: width, channels: channels,
          normalization: normalization, images: images)
        XCTAssertEqual(try images.floats(expected.capacity).map(\.bitPattern), expected.array().map(\.bitPattern), "\(height)×\(width)×\(channels), fixed \(String(describing: fixed))")
      }
    }
  }
}
