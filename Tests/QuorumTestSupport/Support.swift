import Foundation
import Tensor
import XCTest

/// A tensor of N(0, σ²) values from a fixed stream.
public func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, offset: Float = 0) -> Tensor {
  let tensor = Tensor(shape: shape)
  let random = RandomStream(seed: seed, purpose: .initialization, stream: 999)
  for i in 0..<tensor.capacity { tensor[i] = offset + scale * random.normal(at: UInt64(i)) }
  return tensor
}

/// Σ weights·values in double precision: a scalar loss whose gradient is `weights`.
public func weightedSum(_ values: Tensor, _ weights: Tensor, count: Int) -> Double {
  var sum = 0.0
  for i in 0..<count { sum += Double(values[i]) * Double(weights[i]) }
  return sum
}

/// Compares an analytic gradient with central finite differences of `loss` at `indices`
/// of `variable`. Fails when |fd − analytic| > relative·max(|fd|, |analytic|) + absolute
/// at more than `allowedOutliers` indices (a ReLU6 kink inside the step is an outlier, a
/// wrong gradient is wrong almost everywhere). With `extrapolate`, the difference is
/// Richardson-extrapolated from steps h and h/2, cancelling the O(h²) error of curvature.
/// Returns the largest error seen, relative to the tolerance.
@discardableResult
public func checkGradient(
  _ label: String, variable: Tensor, analytic: [Float], indices: [Int], step: Float = 1e-2,
  relative: Double = 1e-2, absolute: Double = 1e-3, allowedOutliers: Int = 0, extrapolate: Bool = false,
  loss: () -> Double, file: StaticString = #filePath, line: UInt = #line
) -> Double {
  var worst = 0.0
  var failures: [String] = []
  func centralDifference(_ index: Int, _ h: Float) -> Double {
    let original = variable[index]
    variable[index] = original + h
    let plus = loss()
    variable[index] = original - h
    let minus = loss()
    variable[index] = original
    return (plus - minus) / (Double(original + h) - Double(original - h))
  }
  for index in indices {
    let coarse = centralDifference(index, step)
    let numeric = extrapolate ? (4 * centralDifference(index, step / 2) - coarse) / 3 : coarse
    let exact = Double(analytic[index])
    let error = abs(numeric - exact)
    let allowed = relative * max(abs(numeric), abs(exact)) + absolute
    worst = max(worst, error / allowed)
    if error > allowed { failures.append("[\(index)] finite difference \(numeric) vs analytic \(exact)") }
  }
  XCTAssert(
    failures.count <= allowedOutliers, "\(label): \(failures.count) of \(indices.count) gradients off: \(failures.prefix(5))",
    file: file, line: line)
  return worst
}

/// `count` indices spread over 0..<total (all of them when total ≤ count).
public func sampledIndices(_ total: Int, count: Int, seed: UInt64 = 7) -> [Int] {
  if total <= count { return Array(0..<total) }
  let random = RandomStream(seed: seed, purpose: .split)
  return (0..<count).map { random.integer(below: total, at: UInt64($0)) }
}

/// A fresh folder under the system's temporary directory, removed by the caller's tearDown.
public func temporaryFolder(_ name: String = #function) throws -> String {
  let base = FileManager.default.temporaryDirectory.appendingPathComponent("quorum-tests-\(getpid())")
  let folder = base.appendingPathComponent(name.filter { $0.isLetter || $0.isNumber } + "-\(UUID().uuidString.prefix(8))")
  try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
  return folder.path
}

/// The Fashion-MNIST folder the Debian package installs (scripts/setup.sh).
public let fashionMNISTFolder = ProcessInfo.processInfo.environment["QUORUM_FASHION_MNIST"] ?? "/usr/share/datasets/fashion-mnist"

/// Bytes of an IDX file: header with `shape` and the given unsigned-byte payload.
public func idxBytes(shape: [Int], payload: [UInt8]) -> [UInt8] {
  var bytes: [UInt8] = [0, 0, 0x08, UInt8(shape.count)]
  for dimension in shape {
    bytes += [UInt8(dimension >> 24 & 255), UInt8(dimension >> 16 & 255), UInt8(dimension >> 8 & 255), UInt8(dimension & 255)]
  }
  return bytes + payload
}

/// The built `quorum` executable beside the test bundle.
public var quorumExecutable: URL { Bundle.main.bundleURL.appendingPathComponent("quorum") }

/// Where the tests' worker processes keep fetched data sets (one per test process).
public let testDataCache = NSTemporaryDirectory() + "quorum-test-cache-\(getpid())"

/// Starts `quorum` with these arguments (and extra environment variables), stdout and
/// stderr into one pipe; `unsetting` names variables of this process it does not inherit.
public func startQuorum(
  _ arguments: [String], environment: [String: String] = [:], unsetting: Set<String> = []
) throws -> (process: Process, output: Pipe) {
  let process = Process()
  process.executableURL = quorumExecutable
  process.arguments = arguments
  // Workers keep fetched data sets in the tests' own cache, not the user's.
  let defaults = ["QUORUM_CACHE": testDataCache]
  process.environment = ProcessInfo.processInfo.environment.merging(defaults) { $1 }.merging(environment) { $1 }
    .filter { !unsetting.contains($0.key) }
  let pipe = Pipe()
  process.standardOutput = pipe
  process.standardError = pipe
  try process.run()
  return (process, pipe)
}

/// Runs `quorum` to the end: its exit status and everything it printed.
public func runQuorum(
  _ arguments: [String], environment: [String: String] = [:], unsetting: Set<String> = []
) throws -> (status: Int32, output: String) {
  let (process, pipe) = try startQuorum(arguments, environment: environment, unsetting: unsetting)
  let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  process.waitUntilExit()
  return (process.terminationStatus, output)
}
