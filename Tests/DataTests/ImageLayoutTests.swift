import Data
import Files
import Foundation
import QuorumTestSupport
import XCTest

final class ImageLayoutTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func gradient(_ height: Int, _ width: Int, channels: Int = 1, offset: Int = 0) -> DecodedImage {
    DecodedImage(
      pixels: (0..<(height * width * channels)).map { UInt8((($0 / channels) * 7 + offset + $0 % channels * 40) % 256) },
      height: height, width: width, channels: channels)
  }

  func writePNG(_ image: DecodedImage, _ name: String) throws {
    try FileBytes.writeAtomically(try ImageCodec.encodePNG(image), to: folder + "/" + name)
  }

  func assertError(_ body: @autoclosure () throws -> Any, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
      for part in parts { XCTAssert("\(error)".contains(part), "\"\(error)\" should mention \"\(part)\"", file: file, line: line) }
    }
  }

  func testPNGAndJPEGRoundTrips() throws {
    for channels in [1, 3] {
      let image = gradient(9, 7, channels: channels)
      XCTAssertEqual(try ImageCodec.decode(try ImageCodec.encodePNG(image), path: "x.png", channels: channels), image)
      let jpeg = try ImageCodec.decode(try ImageCodec.encodeJPEG(image, quality: 100), path: "x.jpg", channels: channels)
      XCTAssertEqual([jpeg.height, jpeg.width, jpeg.channels], [9, 7, channels])
      let worst = zip(jpeg.pixels, image.pixels).map { abs(Int($0) - Int($1)) }.max()!
      XCTAssertLessThanOrEqual(worst, 12, "JPEG at quality 100 is close to the original")
    }
    // RGB → grey by luminance.
    let colour = DecodedImage(pixels: [255, 0, 0, 0, 255, 0], height: 1, width: 2, channels: 3)
    let grey = try ImageCodec.decode(try ImageCodec.encodePNG(colour), path: "c.png", channels: 1)
    XCTAssert(grey.pixels[0] < grey.pixels[1], "green is brighter than red: \(grey.pixels)")
    assertError(try ImageCodec.decode([0x89, 0x50, 0x4E, 0x47, 1, 2, 3], path: "bad.png", channels: 1), mentions: ["bad.png", "unreadable PNG"])
    assertError(try ImageCodec.decode([0xFF, 0xD8, 0, 0], path: "bad.jpg", channels: 1), mentions: ["bad.jpg", "unreadable JPEG"])
    assertError(try ImageCodec.decode([1, 2, 3], path: "what.bin", channels: 1), mentions: ["what.bin", "neither PNG nor JPEG"])
  }

  func testCSVParsingHandlesQuotesAndLineEnds() throws {
    let rows = try CSV.parse("id,label\r\n\"a,1\",\"say \"\"hi\"\"\"\nb,2\n", path: "t.csv")
    XCTAssertEqual(rows, [["id", "label"], ["a,1", "say \"hi\""], ["b", "2"]])
    assertError(try CSV.parse("id\n\"open\n", path: "open.csv"), mentions: ["open.csv", "not closed"])
  }

  func testResizeKeepsConstantsAndAveragesAreas() {
    let constant = DecodedImage(pixels: [UInt8](repeating: 90, count: 16), height: 4, width: 4, channels: 1)
    for interpolation in Interpolation.allCases {
      XCTAssertEqual(interpolation.resize(constant, height: 7, width: 5).pixels, [UInt8](repeating: 90, count: 35))
    }
    // 4×4 of 2×2 blocks (0, 100 / 200, 40) → area 2×2 gives the block values.
    let blocks: [UInt8] = [0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 40, 40, 200, 200, 40, 40]
    let image = DecodedImage(pixels: blocks, height: 4, width: 4, channels: 1)
    XCTAssertEqual(Interpolation.area.resize(image, height: 2, width: 2).pixels, [0, 100, 200, 40])
    XCTAssertEqual(Interpolation.nearest.resize(image, height: 2, width: 2).pixels, [0, 100, 200, 40])
  }

  func testCSVLayoutLabelsIdsAndErrors() throws {
    let images = folder + "/images"
    try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    for (i, id) in ["a", "b", "c", "d"].enumerated() { try writePNG(gradient(6, 6, offset: i * 10), "images/\(id).png") }
    try FileBytes.writeAtomically(try ImageCodec.encodeJPEG(gradient(6, 6)), to: images + "/e.jpg")
    try FileBytes.writeAtomically(Array("image,kind\na,dog\nb,cat\nc,dog\nd,cat\ne,dog\n".utf8), to: folder + "/train.csv")
    let (train, encoding) = try ImageDataset.loadCSV(csv: folder + "/train.csv", imageFolder: images, idColumn: "image", labelColumn: "kind")
    XCTAssertEqual(encoding.classes, ["cat", "dog"])
    XCTAssertEqual(train.labels, [1, 0, 1, 0, 1])
    XCTAssertEqual(train.ids, ["a", "b", "c", "d", "e"])
    XCTAssertEqual([train.height, train.width], [6, 6])
    XCTAssertEqual(LabelEncoding(labels: ["10", "2", "1"]).classes, ["1", "2", "10"], "integers in numeric order")

    // An unlabelled test CSV keeps its ids; an unknown label in a labelled one is an error.
    try FileBytes.writeAtomically(Array("image\nd\na\n".utf8), to: folder + "/test.csv")
    let test = try ImageDataset.loadCSV(csv: folder + "/test.csv", imageFolder: images, idColumn: "image", labelColumn: nil, encoding: encoding).dataset
    XCTAssertFalse(test.isLabelled)
    XCTAssertEqual(test.ids, ["d", "a"])
    try FileBytes.writeAtomically(Array("image,kind\na,dog\nb,horse\n".utf8), to: folder + "/unknown.csv")
    assertError(
      try ImageDataset.loadCSV(csv: folder + "/unknown.csv", imageFolder: images, idColumn: "image", labelColumn: "kind", encoding: encoding),
      mentions: ["unknown.csv", "row 3", "horse"])
    try FileBytes.writeAtomically(Array("image,kind\na,dog\nzz,cat\n".utf8), to: folder + "/missing.csv")
    assertError(
      try ImageDataset.loadCSV(csv: folder + "/missing.csv", imageFolder: images, idColumn: "image", labelColumn: "kind"),
      mentions: ["missing.csv", "row 3", "zz"])
    assertError(try ImageDataset.loadCSV(csv: folder + "/train.csv", imageFolder: images), mentions: ["train.csv", "no column \"id\""])
    // An unreadable PNG and images of another size.
    try FileBytes.writeAtomically([0x89, 0x50, 0x4E, 0x47, 0, 0, 0], to: images + "/f.png")
    try writePNG(gradient(8, 6), "images/g.png")
    try FileBytes.writeAtomically(Array("image,kind\na,dog\nf,cat\n".utf8), to: folder + "/broken.csv")
    assertError(
      try ImageDataset.loadCSV(csv: folder + "/broken.csv", imageFolder: images, idColumn: "image", labelColumn: "kind"),
      mentions: ["f.png", "unreadable PNG", "row 3"])
    try FileBytes.writeAtomically(Array("image,kind\na,dog\ng,cat\n".utf8), to: folder + "/sizes.csv")
    assertError(
      try ImageDataset.loadCSV(csv: folder + "/sizes.csv", imageFolder: images, idColumn: "image", labelColumn: "kind"),
      mentions: ["g.png", "8×6", "6×6", "image size"])
    let resized = try ImageDataset.loadCSV(
      csv: folder + "/sizes.csv", imageFolder: images, idColumn: "image", labelColumn: "kind",
      loading: ImageLoading(size: (5, 5), channels: 3, interpolation: .area)).dataset
    XCTAssertEqual([resized.height, resized.width, resized.channels, resized.count], [5, 5, 3, 2])
  }

  /// Unlabelled test sets in every layout keep ids for the submission.
  func testUnlabelledSetsInEveryLayout() throws {
    try FileManager.default.createDirectory(atPath: folder + "/flat", withIntermediateDirectories: true)
    try writePNG(gradient(5, 5), "flat/b7.png")
    try FileBytes.writeAtomically(try ImageCodec.encodeJPEG(gradient(5, 5)), to: folder + "/flat/a3.jpg")
    let flat = try ImageDataset.loadImageFolder(folder + "/flat", classes: 4)
    XCTAssertEqual(flat.ids, ["a3", "b7"])
    XCTAssertFalse(flat.isLabelled)
    XCTAssertEqual(flat.classes, 4)
    try FileBytes.writeAtomically(idxBytes(shape: [3, 2, 2], payload: [UInt8](repeating: 5, count: 12)), to: folder + "/test.idx")
    let idx = try ImageDataset.loadUnlabelledIDX(images: folder + "/test.idx", classes: 10)
    XCTAssertEqual(idx.ids, ["0", "1", "2"])
    XCTAssertFalse(idx.isLabelled)
    try FileBytes.writeAtomically(NumPy.encode([UInt8](repeating: 1, count: 2 * 16), shape: [2, 16]), to: folder + "/test.npy")
    let array = try ImageDataset.loadUnlabelledArray(folder + "/test.npy", classes: 10)
    XCTAssertEqual([array.count, array.height, array.width], [2, 4, 4])
    XCTAssertFalse(array.subset([1]).isLabelled, "subsets keep the flag")
    XCTAssertEqual(array.subset([1]).ids, ["1"])
    assertError(try ImageDataset.loadImageFolder(folder + "/nowhere", classes: 2), mentions: ["nowhere", "no such folder"])
    try FileManager.default.createDirectory(atPath: folder + "/empty", withIntermediateDirectories: true)
    assertError(try ImageDataset.loadImageFolder(folder + "/empty", classes: 2), mentions: ["empty", "no .png"])
  }

  func testClassFolders() throws {
    for (name, count) in [("shirt", 2), ("boot", 3)] {
      try FileManager.default.createDirectory(atPath: folder + "/train/" + name, withIntermediateDirectories: true)
      for i in 0..<count { try writePNG(gradient(5, 5, offset: i), "train/\(name)/\(i).png") }
    }
    let (dataset, encoding) = try ImageDataset.loadClassFolders(folder + "/train")
    XCTAssertEqual(encoding.classes, ["boot", "shirt"])
    XCTAssertEqual(dataset.classCounts, [3, 2])
    XCTAssertEqual(dataset.ids?.first, "boot/0.png")
    try FileManager.default.createDirectory(atPath: folder + "/test/hat", withIntermediateDirectories: true)
    try writePNG(gradient(5, 5), "test/hat/0.png")
    assertError(try ImageDataset.loadClassFolders(folder + "/test", encoding: encoding), mentions: ["hat", "not one of the training classes"])
  }

  /// Colour thrown away is said: colour files read as grey are counted and named, in
  /// PNG and JPEG alike; an all-grey set read as RGB is said too; a grey file among colour
  /// ones read as RGB is what mixed sets need, and is not.
  func testColourChangedByLoadingIsCounted() throws {
    let colour = gradient(5, 5, channels: 3), grey = gradient(5, 5)
    for (name, image) in [("a", colour), ("b", grey)] {
      try FileManager.default.createDirectory(atPath: folder + "/mixed/" + name, withIntermediateDirectories: true)
      try writePNG(image, "mixed/\(name)/0.png")
      try FileBytes.writeAtomically(try ImageCodec.encodeJPEG(image), to: folder + "/mixed/\(name)/1.jpg")
    }
    XCTAssertEqual(ImageCodec.storesColour(try ImageCodec.encodeJPEG(colour)), true)
    XCTAssertEqual(ImageCodec.storesColour(try ImageCodec.encodeJPEG(grey)), false)
    XCTAssertEqual(ImageCodec.storesColour(try ImageCodec.encodePNG(colour)), true)
    XCTAssertEqual(ImageCodec.storesColour(try ImageCodec.encodePNG(grey)), false)

    let asGrey = try ImageDataset.loadClassFolders(folder + "/mixed").dataset
    XCTAssertEqual(asGrey.convertedImages.count, 2, "the colour PNG and JPEG")
    let warning = try XCTUnwrap(asGrey.convertedImages.warning(of: asGrey.count, channels: 1))
    XCTAssert(warning.hasPrefix("2 of 4 images are colour files, read as grey") && warning.contains("--channels 3"), warning)
    XCTAssert(warning.contains("mixed/a/"), warning)
    let asColour = try ImageDataset.loadClassFolders(folder + "/mixed", loading: ImageLoading(channels: 3)).dataset
    XCTAssertEqual(asColour.convertedImages.count, 2, "the grey files, repeated into RGB")
    XCTAssertNil(asColour.convertedImages.warning(of: asColour.count, channels: 3), "a mixed set read as RGB")
    try FileManager.default.removeItem(atPath: folder + "/mixed/a")
    let allGrey = try ImageDataset.loadClassFolders(folder + "/mixed", loading: ImageLoading(channels: 3)).dataset
    XCTAssert(allGrey.convertedImages.warning(of: allGrey.count, channels: 3)?.hasPrefix("all 2 images are grey files") == true)
  }

  /// CSV rows that would mean something else are refused, naming the row: text that is
  /// not UTF-8 (it became a class of replacement characters), an empty label (a class
  /// named "", which also turned numeric labels into text order), an empty or repeated id
  /// (an image trained twice, or two rows of a submission).
  func testCSVsThatMeanSomethingElseAreRefusedNamingTheRow() throws {
    let images = folder + "/images"
    try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
    for id in ["a", "b", "c"] { try writePNG(gradient(4, 4), "images/\(id).png") }
    let cases: [(bytes: [UInt8], mentions: [String])] = [
      (Array("id,label\na,1\nb,".utf8) + [0xff, 0xfe] + Array("\n".utf8), ["line 3", "not valid UTF-8"]),
      (Array("id,label\na,1\nb,\nc,2\n".utf8), ["row 3", "column \"label\" is empty"]),
      (Array("id,label\na,1\n,2\n".utf8), ["row 3", "column \"id\" is empty"]),
      (Array("id,label\na,1\nb,2\na,2\n".utf8), ["row 4", "id \"a\" repeats row 2"]),
    ]
    for (bytes, mentions) in cases {
      try FileBytes.writeAtomically(bytes, to: folder + "/t.csv")
      assertError(try ImageDataset.loadCSV(csv: folder + "/t.csv", imageFolder: images), mentions: ["t.csv"] + mentions)
    }
    // An unlabelled CSV's repeated id is refused too (two rows of one submission).
    try FileBytes.writeAtomically(Array("id\na\na\n".utf8), to: folder + "/u.csv")
    assertError(try ImageDataset.loadCSV(csv: folder + "/u.csv", imageFolder: images, labelColumn: nil), mentions: ["row 3", "repeats"])
  }

  /// An empty class folder is a class no example teaches: refused, not trained as a class.
  func testAnEmptyClassFolderIsRefused() throws {
    try FileManager.default.createDirectory(atPath: folder + "/train/boot", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: folder + "/train/empty", withIntermediateDirectories: true)
    try writePNG(gradient(4, 4), "train/boot/0.png")
    assertError(try ImageDataset.loadClassFolders(folder + "/train"), mentions: ["train/empty", "no .png", "remove it"])
    assertError(try ImageDataset.loadClassFolders(folder + "/absent"), mentions: ["absent", "no such folder"])
  }

  /// Folders are created and listed with the system's reason in words, never a Foundation
  /// error domain and code; a write's error is the failing call's, not "Success".
  func testFolderAndWriteErrorsSayWhy() throws {
    try FileBytes.writeAtomically([1], to: folder + "/afile")
    for attempt in [{ try Folders.create(self.folder + "/afile/sub") }, { try FileBytes.writeAtomically([1], to: self.folder + "/afile/sub/x") }] {
      XCTAssertThrowsError(try attempt()) { error in
        XCTAssert("\(error)".contains("afile is a file, not a folder"), "\(error)")
        XCTAssertFalse("\(error)".contains("Domain"), "\(error)")
      }
    }
    assertError(try FileBytes.writeAtomically([1], to: folder), mentions: ["is a folder", "name a file"])
    assertError(try Folders.list(folder + "/afile"), mentions: ["afile", "is a file, not a folder"])
    try Folders.create(folder + "/a/b/c")
    try Folders.create(folder + "/a/b/c")  // idempotent, like mkdir -p
    XCTAssertEqual(try Folders.list(folder + "/a"), ["b"])
  }

}
