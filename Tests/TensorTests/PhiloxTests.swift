import Tensor
import XCTest

final class PhiloxTests: XCTestCase {
  /// Known-answer vectors of the Random123 reference (kat_vectors, philox4x32_10).
  func testMatchesRandom123KnownAnswers() {
    let zero = Philox.block((0, 0, 0, 0), key: (0, 0))
    XCTAssertEqual([zero.0, zero.1, zero.2, zero.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
    let ones = Philox.block((0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff), key: (0xffff_ffff, 0xffff_ffff))
    XCTAssertEqual([ones.0, ones.1, ones.2, ones.3], [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd])
    let pi = Philox.block((0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344), key: (0xa409_3822, 0x299f_31d0))
    XCTAssertEqual([pi.0, pi.1, pi.2, pi.3], [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1])
  }

  func testStreamsAreReproducibleAndWellDistributed() {
    let stream = RandomStream(seed: 42, purpose: .shuffle, stream: 3)
    XCTAssertEqual(stream.uniform(at: 17), RandomStream(seed: 42, purpose: .shuffle, stream: 3).uniform(at: 17))
    XCTAssertNotEqual(stream.uniform(at: 17), RandomStream(seed: 42, purpose: .dropout, stream: 3).uniform(at: 17))
    let normals = (0..<20_000).map { Double(stream.normal(at: UInt64($0))) }
    let mean = normals.reduce(0, +) / Double(normals.count)
    let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(normals.count)
    XCTAssertEqual(mean, 0, accuracy: 0.03)
    XCTAssertEqual(variance, 1, accuracy: 0.05)
    let permutation = stream.permutation(1000)
    XCTAssertEqual(permutation.sorted(), Array(0..<1000))
    XCTAssertNotEqual(permutation, Array(0..<1000))
  }
}
