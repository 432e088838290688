import Data
import Files
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

final class CheckpointTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func model(width: Double = 0.35, seed: UInt64 = 3) throws -> MobileNetV2 {
    let model = try MobileNetV2(MobileNetV2Configuration(width: width), capacity: 4, backend: CPUBackend(threads: 2))
    model.initialize(seed: seed)
    return model
  }

  let description = ModelCheckpoint.Description(configuration: MobileNetV2Configuration(width: 0.35), mean: [0.286], std: [0.353])

  /// Parses the file with nothing but the format's definition: u64 header length, JSON,
  /// data_offsets that tile the data section, aligned to 8 bytes.
  func testHeaderParsesAsTheFormatSays() throws {
    let original = try model()
    // Give the running statistics and counter values to recognise.
    original.norms[0].runningMean.value.fill(0.25)
    original.norms[0].batchesTracked = 7
    let path = folder + "/model.safetensors"
    try ModelCheckpoint.save(original, description: description, to: path)
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    XCTAssertEqual((8 + length) % 8, 0, "data section aligned")
    let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any])
    let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
    XCTAssertEqual(metadata["format"], "quorum.mobilenet_v2")
    XCTAssertEqual(metadata["stage_strides"], "1,2,2,2,1,2,1")
    var ranges: [(Int, Int)] = []
    for (name, value) in header where name != "__metadata__" {
      let entry = try XCTUnwrap(value as? [String: Any])
      let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
      let shape = try XCTUnwrap(entry["shape"] as? [Int])
      let size = entry["dtype"] as? String == "I64" ? 8 : 4
      XCTAssertEqual(offsets[1] - offsets[0], shape.reduce(1, *) * size, name)
      ranges.append((offsets[0], offsets[1]))
    }
    ranges.sort { $0.0 < $1.0 }
    XCTAssertEqual(ranges.first?.0, 0)
    for (a, b) in zip(ranges, ranges.dropFirst()) { XCTAssertEqual(a.1, b.0) }
    XCTAssertEqual(ranges.last?.1, bytes.count - 8 - length)
    // A value read back by hand: features.0.1.running_mean is 0.25 little-endian floats.
    let entry = try XCTUnwrap(header["features.0.1.running_mean"] as? [String: Any])
    let start = 8 + length + (entry["data_offsets"] as! [Int])[0]
    XCTAssertEqual(bytes[start..<(start + 4)].withUnsafeBytes { $0.loadUnaligned(as: Float.self) }, 0.25)
    let tracked = try XCTUnwrap(header["features.0.1.num_batches_tracked"] as? [String: Any])
    XCTAssertEqual(tracked["dtype"] as? String, "I64")
    XCTAssertEqual(tracked["shape"] as? [Int], [])
  }

  /// The saved names, shapes, dtypes and order are torchvision's state_dict
  /// (Fixtures/torchvision_mobilenet_v2_w1.0_c1_k10.json, from scripts/bench/mobilenet_reference.py).
  func testNamesShapesAndOrderAreTorchvisions() throws {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "torchvision_mobilenet_v2_w1.0_c1_k10", withExtension: "json", subdirectory: "Fixtures"))
    let reference = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let tensors = try XCTUnwrap(reference["tensors"] as? [[String: Any]])
    let full = try model(width: 1.0)
    let path = folder + "/full.safetensors"
    try ModelCheckpoint.save(full, description: ModelCheckpoint.Description(configuration: full.configuration, mean: [0], std: [1]), to: path)
    let file = try Safetensors.read(path)
    XCTAssertEqual(file.entries.map(\.name), tensors.map { $0["name"] as! String })
    XCTAssertEqual(file.entries.map(\.shape), tensors.map { $0["shape"] as! [Int] })
    XCTAssertEqual(file.entries.map { $0.dtype == .I64 ? "int64" : "float32" }, tensors.map { $0["dtype"] as! String })
    XCTAssertEqual(full.parameterCount, reference["parameters"] as? Int)
  }

  func testSaveLoadGivesIdenticalLogits() throws {
    let original = try model(seed: 3)
    let images = randomTensor([4 * 28 * 28], seed: 8)
    original.forward(images, batch: 4, training: true)  // move the running statistics
    let expected = original.forward(images, batch: 4, training: false).array(count: 40)
    let path = folder + "/model.safetensors"
    try ModelCheckpoint.save(original, description: description, to: path)
    let restored = try model(seed: 99)
    XCTAssertNotEqual(restored.forward(images, batch: 4, training: false).array(count: 40), expected)
    try ModelCheckpoint.load(path, into: restored)
    XCTAssertEqual(restored.forward(images, batch: 4, training: false).array(count: 40), expected)
    XCTAssertEqual(try ModelCheckpoint.description(of: path), description)
  }

  func testCheckpointOfAnotherShapeOrACorruptFileIsAClearError() throws {
    let path = folder + "/wide.safetensors"
    try ModelCheckpoint.save(try model(width: 0.5), description: description, to: path)
    XCTAssertThrowsError(try ModelCheckpoint.load(path, into: try model(width: 0.35))) { error in
      let message = "\(error)"
      XCTAssert(message.contains("wide.safetensors") && message.contains("shape") && message.contains("the model expects"), message)
    }
    let bytes = try FileBytes.read(path)
    try FileBytes.writeAtomically(Array(bytes.prefix(bytes.count - 100)), to: folder + "/cut.safetensors")
    XCTAssertThrowsError(try ModelCheckpoint.load(folder + "/cut.safetensors", into: try model())) { error in
      XCTAssert("\(error)".contains("cut.safetensors"), "\(error)")
    }
    try FileBytes.writeAtomically([200, 0, 0, 0, 0, 0, 0, 0] + Array("{\"a\":1}".utf8), to: folder + "/garbage.safetensors")
    XCTAssertThrowsError(try Safetensors.read(folder + "/garbage.safetensors")) { error in
      XCTAssert("\(error)".contains("garbage.safetensors") && "\(error)".contains("header length"), "\(error)")
    }
    // A header length past Int.max, and a shape whose product overflows: errors, not traps.
    try FileBytes.writeAtomically([UInt8](repeating: 0xFF, count: 8) + Array("{}".utf8), to: folder + "/long.safetensors")
    XCTAssertThrowsError(try Safetensors.read(folder + "/long.safetensors")) { error in
      XCTAssert("\(error)".contains("long.safetensors") && "\(error)".contains("header length"), "\(error)")
    }
    let header = Array("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}".utf8)
    try FileBytes.writeAtomically([UInt8(header.count)] + [UInt8](repeating: 0, count: 7) + header, to: folder + "/wide.safetensors")
    XCTAssertThrowsError(try Safetensors.read(folder + "/wide.safetensors")) { error in
      XCTAssert("\(error)".contains("wide.safetensors") && "\(error)".contains("more bytes than any file holds"), "\(error)")
    }
  }

  /// A checkpoint holding a NaN weight predicted class 0 for everything without a word:
  /// now refused on load, naming the file and the tensor.
  func testACheckpointWithNaNWeightsIsRefused() throws {
    let original = try model(seed: 3)
    let path = folder + "/model.safetensors"
    try ModelCheckpoint.save(original, description: description, to: path)
    var file = try Safetensors.read(path)
    let entry = try XCTUnwrap(file.entries.first { $0.dtype == .F32 && $0.name.hasSuffix("weight") })
    let name = entry.name
    withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { file.data.replaceSubrange(entry.bytes.lowerBound..<entry.bytes.lowerBound + 4, with: $0) }
    try file.write(to: folder + "/nan.safetensors")
    XCTAssertThrowsError(try ModelCheckpoint.load(folder + "/nan.safetensors", into: try model())) { error in
      let message = "\(error)"
      XCTAssert(message.contains("nan.safetensors") && message.contains(name) && message.contains("NaN"), message)
    }
  }

}
