import Data
import Files
import Foundation
import QuorumTestSupport
import XCTest

final class ReaderTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func write(_ bytes: [UInt8], _ name: String) throws -> String {
    let path = folder + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }

  func gzip(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/gzip")
    process.arguments = ["-kf", path]
    try process.run()
    process.waitUntilExit()
    return path + ".gz"
  }

  func makeDataset(count: Int = 6, labels: [UInt8]? = nil) throws -> (images: String, labels: String) {
    let pixels = (0..<(count * 4 * 3)).map { UInt8($0 % 251) }
    let images = try write(idxBytes(shape: [count, 4, 3], payload: pixels), "images.idx")
    let labelPath = try write(idxBytes(shape: [count], payload: labels ?? (0..<count).map { UInt8($0 % 3) }), "labels.idx")
    return (images, labelPath)
  }

  func assertError(_ body: @autoclosure () throws -> Any, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
      let message = "\(error)"
      for part in parts { XCTAssert(message.contains(part), "\"\(message)\" should mention \"\(part)\"", file: file, line: line) }
    }
  }

  /// Headers that declare sizes no file holds are errors naming the file; before, the size
  /// was multiplied unchecked (a trap) or allocated before the pixels were seen (an abort).
  func testHeadersDeclaringAbsurdSizesAreErrorsNotCrashes() throws {
    let huge = try write(idxBytes(shape: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], payload: [1, 2, 3]), "huge.idx")
    assertError(try IDX.read(huge, dimensions: 3), mentions: ["huge.idx", "more values than any file holds"])
    let text = Array("{'descr': '|u1', 'fortran_order': False, 'shape': (9999999999999, 9999999999999), }\n".utf8)
    let npy = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(text.count), 0] + text + [1, 2, 3, 4]
    assertError(try NumPy.read(try write(npy, "huge.npy")), mentions: ["huge.npy", "more bytes than any file holds"])

    let small = DecodedImage(pixels: [UInt8](repeating: 128, count: 4), height: 2, width: 2, channels: 1)
    var png = try ImageCodec.encodePNG(small)
    // IHDR's width and height (bytes 16…23) set to 100,000 (libpng's own limit is 1,000,000),
    // its CRC recomputed so that libpng reads the header.
    for offset in [16, 20] { png.replaceSubrange(offset..<offset + 4, with: [0, 0x01, 0x86, 0xA0]) }
    let crc = crc32(Array(png[12..<29]))
    png.replaceSubrange(29..<33, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 255), UInt8(crc >> 8 & 255), UInt8(crc & 255)])
    assertError(try ImageCodec.decode(png, path: "wide.png", channels: 3), mentions: ["wide.png", "100000×100000", "at most"])
    var jpeg = try ImageCodec.encodeJPEG(small, quality: 90)
    let frame = try XCTUnwrap((0..<jpeg.count - 1).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }, "a baseline JPEG has SOF0")
    // 60,000 × 60,000 (TurboJPEG's own limit is 65,500 a side): 10 GB of pixels.
    jpeg.replaceSubrange(frame + 5..<frame + 9, with: [0xEA, 0x60, 0xEA, 0x60])
    assertError(try ImageCodec.decode(jpeg, path: "wide.jpg", channels: 1), mentions: ["wide.jpg", "60000×60000", "at most"])
    assertError(try FileBytes.read(folder), mentions: [folder, "is a directory"])
  }

  /// PNG's chunk checksum (CRC-32, ISO 3309), for the patched header above.
  func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
    }
    return ~crc
  }

  func testReadsRawAndGzippedIDXIdentically() throws {
    let (images, labels) = try makeDataset()
    let raw = try ImageDataset.loadIDX(images: images, labels: labels)
    let zipped = try ImageDataset.loadIDX(images: try gzip(images), labels: try gzip(labels))
    XCTAssertEqual(raw.count, 6)
    XCTAssertEqual([raw.height, raw.width, raw.channels, raw.classes], [4, 3, 1, 3])
    XCTAssertEqual(raw.pixels, zipped.pixels)
    XCTAssertEqual(raw.labels, [0, 1, 2, 0, 1, 2])
    XCTAssertEqual(raw.classCounts, [2, 2, 2])
  }

  func testTruncatedFilesAreRejectedNamingTheFile() throws {
    let (images, _) = try makeDataset()
    var bytes = try FileBytes.read(images)
    bytes.removeLast(5)
    let truncated = try write(bytes, "truncated.idx")
    assertError(try IDX.read(truncated, dimensions: 3), mentions: ["truncated.idx", "truncated", "72 values", "67"])
    // A gzip stream cut in half is an error, not silently short data.
    let compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try gzip(images))))
    let half = try write(Array(compressed.prefix(compressed.count / 2)), "half.idx.gz")
    assertError(try IDX.read(half, dimensions: 3), mentions: ["half.idx.gz", "truncated"])
    var corrupt = compressed
    corrupt[corrupt.count - 6] ^= 0xff  // inside the CRC-checked trailer
    let flipped = try write(corrupt, "flipped.idx.gz")
    assertError(try IDX.read(flipped, dimensions: 3), mentions: ["flipped.idx.gz", "corrupt"])
    assertError(try IDX.read(folder + "/absent.idx", dimensions: 3), mentions: ["absent.idx", "no such file"])
  }

  func testWrongMagicDimensionsAndTrailingBytesAreRejected() throws {
    let (images, labels) = try makeDataset()
    var bytes = try FileBytes.read(images)
    bytes[0] = 0x1f
    bytes[1] = 0x00
    assertError(try IDX.read(try write(bytes, "magic.idx"), dimensions: 3), mentions: ["magic.idx", "magic"])
    assertError(try ImageDataset.loadIDX(images: labels, labels: labels), mentions: ["labels.idx", "1 dimensions, expected 3 or 4"])
    let trailing = try write(try FileBytes.read(images) + [1, 2, 3], "trailing.idx")
    assertError(try IDX.read(trailing, dimensions: 3), mentions: ["trailing.idx", "3 bytes of trailing data"])
    var float = try FileBytes.read(images)
    float[2] = 0x0d
    assertError(try IDX.read(try write(float, "float.idx"), dimensions: 3), mentions: ["float.idx", "type code 0d"])
  }

  func testLabelsOutsideTheClassRangeAndCountMismatchesAreRejected() throws {
    let (images, labels) = try makeDataset(labels: [0, 1, 2, 9, 1, 0])
    assertError(try ImageDataset.loadIDX(images: images, labels: labels, classes: 3), mentions: ["labels.idx", "label 9 at index 3", "0…2"])
    let short = try write(idxBytes(shape: [5], payload: [0, 1, 2, 0, 1]), "short-labels.idx")
    assertError(try ImageDataset.loadIDX(images: images, labels: short), mentions: ["short-labels.idx", "5 labels", "6 images"])
  }

  /// Quick, Draw!'s layout: one CLASS.npy per class, names sorted.
  func testClassArraysReadFlatAndSquareImagesAndRejectBadFiles() throws {
    let arrays = folder + "/arrays"
    try FileManager.default.createDirectory(atPath: arrays, withIntermediateDirectories: true)
    try FileBytes.writeAtomically(NumPy.encode([UInt8](repeating: 7, count: 3 * 784), shape: [3, 784]), to: arrays + "/zebra.npy")
    try FileBytes.writeAtomically(NumPy.encode([UInt8](repeating: 9, count: 2 * 784), shape: [2, 28, 28]), to: arrays + "/apple.npy")
    let dataset = try ImageDataset.loadClassArrays(folder: arrays)
    XCTAssertEqual(dataset.classNames, ["apple", "zebra"])
    XCTAssertEqual(dataset.labels, [0, 0, 1, 1, 1])
    XCTAssertEqual([dataset.height, dataset.width, dataset.channels], [28, 28, 1])
    XCTAssertEqual(dataset.pixels.first, 9)
    XCTAssertEqual(dataset.pixels.last, 7)

    try NumPy.write([1, 2, 3], shape: [3], to: arrays + "/float.npy")
    assertError(try ImageDataset.loadClassArrays(folder: arrays), mentions: ["float.npy", "dtype <f4"])
    try FileManager.default.removeItem(atPath: arrays + "/float.npy")
    try FileBytes.writeAtomically(NumPy.encode([UInt8](repeating: 1, count: 2 * 100), shape: [2, 10, 10]), to: arrays + "/small.npy")
    assertError(try ImageDataset.loadClassArrays(folder: arrays), mentions: ["small.npy", "10×10×1", "apple.npy", "28×28×1"])
    try FileManager.default.removeItem(atPath: arrays + "/small.npy")
    try FileBytes.writeAtomically(NumPy.encode([UInt8](repeating: 1, count: 2 * 783), shape: [2, 783]), to: arrays + "/odd.npy")
    assertError(try ImageDataset.loadClassArrays(folder: arrays), mentions: ["odd.npy", "not a square"])
    assertError(try ImageDataset.loadClassArrays(folder: folder + "/nothing"), mentions: ["nothing"])
  }

  func testFashionMNISTFromTheDebianPackage() throws {
    let path = fashionMNISTFolder + "/t10k-images-idx3-ubyte.gz"
    guard FileManager.default.fileExists(atPath: path) else {
      return XCTFail("Fashion-MNIST is missing at \(fashionMNISTFolder): run scripts/setup.sh")
    }
    let test = try ImageDataset.loadIDX(images: path, labels: fashionMNISTFolder + "/t10k-labels-idx1-ubyte.gz")
    XCTAssertEqual(test.count, 10_000)
    XCTAssertEqual(test.classCounts, [Int](repeating: 1000, count: 10))
    XCTAssertEqual([test.height, test.width], [28, 28])
  }
}
