import Data
import Files
import XCTest

/// SHA-256 against FIPS 180-4's examples (and the NIST test vectors' million "a"), whole
/// and fed in uneven pieces.
final class SHA256Tests: XCTestCase {
  func testTheStandardsVectors() {
    XCTAssertEqual(SHA256.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    XCTAssertEqual(
      SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    let million = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
    XCTAssertEqual(SHA256.hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    // The same bytes in pieces that straddle the 64-byte blocks.
    var pieces = SHA256()
    var start = 0
    for size in [1, 63, 64, 65, 127, 1000, 7] + Array(repeating: 99_999, count: 10) where start < million.count {
      let end = min(start + size, million.count)
      pieces.update(Array(million[start..<end]))
      start = end
    }
    pieces.update(Array(million[start...]))
    XCTAssertEqual(pieces.finalizeHex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }
}
