import XCTest

extension XCTestCase {
  /// max|ours − reference| ≤ tolerance · max(max|reference|, floor) + rounding, reported
  /// per tensor. The floor matters for gradients that are exactly zero in exact arithmetic
  /// (a projection's batch-norm shift, cancelled by the next batch norm): float32 leaves
  /// rounding noise there, relative to the network's gradient scale, not to zero.
  /// `rounding` is what float32 itself moves the value by (PyTorchParityTests.assertTrainingStep,
  /// PyTorchTrainingParityTests.Allowance).
  func assertClose(
    _ ours: [Float], _ reference: [Float], tolerance: Float, floor: Float = 1e-6, rounding: Float = 0, _ label: String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertEqual(ours.count, reference.count, label, file: file, line: line)
    let scale = max(reference.map(abs).max() ?? 0, floor)
    let difference = zip(ours, reference).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(
      difference, tolerance * scale + rounding,
      "\(label): max difference \(difference), max |reference| \(scale), float32 rounding allowance \(rounding)", file: file, line: line)
  }
}
