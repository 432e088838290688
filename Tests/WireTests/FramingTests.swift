import Wire
import XCTest

final class FramingTests: XCTestCase {
  let logits = WireTensor(name: "oof", shape: [50, 10], values: (0..<500).map { Float(sin(Double($0)) * 7) })

  func roundTrip(_ message: Message) throws -> Message {
    try Framing.decode(try Framing.encode(message))
  }

  func assertRejected(_ frames: [[UInt8]], mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try Framing.decode(frames), file: file, line: line) { error in
      XCTAssert(error is WireError, "\(error)", file: file, line: line)
      for part in parts { XCTAssert("\(error)".contains(part), "\"\(error)\" should mention \"\(part)\"", file: file, line: line) }
    }
  }

  func testEveryMessageRoundTrips() throws {
    let messages: [Message] = [
      .hello(Hello(worker: "gpu-3", version: "0.1.0", devices: ["cpu"], threads: 2)),
      .task(TaskAssignment(task: "seed1/fold3", attempt: 2, settings: "{\"epochs\":15}")),
      .heartbeat,
      .progress(ProgressReport(task: "t", attempt: 1, epoch: 4, loss: 0.61, validationMetric: nil, imagesPerSecond: 1800)),
      .result(TaskResult(task: "t", attempt: 1, tensors: [logits])),
      .acknowledgement(Acknowledgement(task: "t", attempt: 1, stored: false)),
      .disconnect(reason: "shutting down"),
      .reject(reason: "unknown worker key"),
      .failure(TaskFailure(task: "t", attempt: 2, reason: "out of device memory on cuda:0, while building MobileNetV2 at batch size 1024")),
      .stop(TaskStop(task: "trial-3/fold0", attempt: 1, reason: "below the top third at epoch 1")),
      .hello(Hello(worker: "nfs-1", version: "0.1.0", devices: ["cpu"], threads: 2, sharedData: true)),
      .task(TaskAssignment(task: "seed1/fold3", attempt: 1, settings: "{}", data: DataOffer(hash: String(repeating: "ab", count: 32), bytes: 9_000_000))),
      .dataRequest(DataRequest(hash: String(repeating: "ab", count: 32), offset: 4 << 20, length: 1234)),
      .dataChunk(DataChunk(hash: String(repeating: "ab", count: 32), offset: 4 << 20, total: (4 << 20) + 1234, bytes: (0..<1234).map { UInt8($0 % 251) })),
      .dataChunk(DataChunk(hash: "cd", offset: 0, total: 10, bytes: [], refusal: "this coordinator serves another data set")),
    ]
    for message in messages { XCTAssertEqual(try roundTrip(message), message) }
    // A task may carry tensors (a student's teacher targets), as frames after the header.
    let teaching = Message.task(TaskAssignment(task: "student/all", attempt: 1, settings: "{}", tensors: [logits]))
    XCTAssertEqual(try Framing.encode(teaching).count, 2)
    XCTAssertEqual(try roundTrip(teaching), teaching)
    XCTAssertEqual(try Framing.encode(.heartbeat).count, 1)
  }

  func testTensorPrecisionsAndChunking() throws {
    let values = logits.values
    for (precision, tolerance) in [(WirePrecision.float16, Float(4e-3)), (.bfloat16, 3e-2)] {
      guard case .result(let result) = try roundTrip(.result(TaskResult(task: "t", attempt: 1, tensors: [
        WireTensor(name: "x", shape: [500], values: values, precision: precision),
      ]))) else { return XCTFail("not a result") }
      for (a, b) in zip(result.tensors[0].values, values) { XCTAssertEqual(a, b, accuracy: tolerance * max(1, abs(b))) }
    }
    // 1.5 M floats = 6 MiB: two chunks of at most 4 MiB.
    let large = WireTensor(name: "weights", shape: [1500, 1000], values: (0..<1_500_000).map { Float($0 % 977) * 0.5 })
    let frames = try Framing.encode(.result(TaskResult(task: "t", attempt: 1, tensors: [large, logits])))
    XCTAssertEqual(frames.count, 1 + 2 + 1)
    XCTAssertEqual(try Framing.decode(frames), .result(TaskResult(task: "t", attempt: 1, tensors: [large, logits])))
    // Empty tensors travel too.
    let empty = WireTensor(name: "none", shape: [0, 10], values: [])
    XCTAssertEqual(try roundTrip(.result(TaskResult(task: "t", attempt: 1, tensors: [empty]))), .result(TaskResult(task: "t", attempt: 1, tensors: [empty])))
  }

  func testDamagedMessagesAreRejectedWithTheReason() throws {
    let good = try Framing.encode(.result(TaskResult(task: "seed1/fold3", attempt: 2, tensors: [logits])))
    assertRejected([], mentions: ["no frames"])
    assertRejected([Array("XYZ\u{1}\u{3}{}".utf8)], mentions: ["QRM"])
    assertRejected([Array("QRM".utf8) + [9, 3] + Array("{}".utf8)], mentions: ["version 9"])
    assertRejected([Array("QRM".utf8) + [1, 42] + Array("{}".utf8)], mentions: ["unknown message type 42"])
    assertRejected([Array("QRM".utf8) + [1, 2] + Array("{\"task\":1}".utf8)], mentions: ["task", "metadata"])
    assertRejected([Array("QRM".utf8) + [1, 2] + Array("not json".utf8)], mentions: ["task", "not JSON"])
    assertRejected(try Framing.encode(.heartbeat) + [[1, 2, 3]], mentions: ["heartbeat", "1 unexpected frames"])
    // Tensor frames: truncated, one bit flipped, trailing garbage, missing, extra.
    var truncated = good
    truncated[1] = Array(truncated[1].prefix(truncated[1].count / 2))
    assertRejected(truncated, mentions: ["seed1/fold3", "tensor oof", "truncated"])
    var flipped = good
    flipped[1][flipped[1].count / 2] ^= 0x10
    assertRejected(flipped, mentions: ["seed1/fold3", "tensor oof"])
    var trailing = good
    trailing[1] += [0, 1, 2, 3]
    assertRejected(trailing, mentions: ["tensor oof", "after the LZ4 frame"])
    assertRejected(Array(good.prefix(1)), mentions: ["0 tensor frames", "declares 1"])
    assertRejected(good + [good[1]], mentions: ["2 tensor frames", "declares 1"])
  }

  /// A checkpoint travels byte for byte beside the logits, in chunks when large; a damaged
  /// chunk names the file.
  /// A data chunk is held to its declaration before anything is decompressed: no more than
  /// a chunk's bytes, inside the data set, one frame that holds exactly that.
  func testDataChunksAreCheckedAgainstTheirDeclaration() throws {
    let hash = String(repeating: "0f", count: 32)
    let good = try Framing.encode(.dataChunk(DataChunk(hash: hash, offset: 0, total: 100, bytes: Array(repeating: 7, count: 100))))
    func header(_ json: String) -> [UInt8] { Array("QRM".utf8) + [Framing.version, 12] + Array(json.utf8) }
    assertRejected([header("{\"hash\":\"\(hash)\",\"offset\":0,\"total\":\(16 << 20),\"length\":\(8 << 20)}"), good[1]], mentions: ["at most \(Framing.chunkBytes)"])
    assertRejected([header("{\"hash\":\"\(hash)\",\"offset\":90,\"total\":100,\"length\":100}"), good[1]], mentions: ["do not fit"])
    assertRejected([header("{\"hash\":\"\(hash)\",\"offset\":0,\"total\":200,\"length\":200}"), good[1]], mentions: ["data chunk"])
    assertRejected([good[0]], mentions: ["expected one"])
    XCTAssertThrowsError(try Framing.encode(.dataChunk(DataChunk(hash: hash, offset: 0, total: 8 << 20, bytes: Array(repeating: 0, count: 5 << 20)))))
  }

  func testFilesTravelByteForByte() throws {
    let checkpoint = WireFile(name: "checkpoint", bytes: (0..<9_000_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) })
    let message = Message.result(TaskResult(task: "seed0/fold1", attempt: 1, tensors: [logits], files: [checkpoint, WireFile(name: "empty", bytes: [])]))
    let frames = try Framing.encode(message)
    XCTAssertEqual(frames.count, 1 + 1 + 3 + 1, "header, the logits, a 9 MB file in 3 chunks, an empty file")
    XCTAssertEqual(try Framing.decode(frames), message)
    var flipped = frames
    flipped[3][flipped[3].count / 2] ^= 0x01
    assertRejected(flipped, mentions: ["seed0/fold1", "file checkpoint", "chunk 1"])
  }

  /// Names become parts of file names in the run directory: a path, an empty or a repeated
  /// name is refused before anything is decoded.
  func testNamesAreShortWords() throws {
    for name in ["../../etc/passwd", "", "a/b", "x y", String(repeating: "a", count: 65)] {
      let frames = try Framing.encode(.result(TaskResult(task: "t", attempt: 1, tensors: [], files: [WireFile(name: name, bytes: [1])])))
      assertRejected(frames, mentions: ["name"])
    }
    let twice = try Framing.encode(.result(TaskResult(task: "t", attempt: 1, tensors: [logits, logits])))
    assertRejected(twice, mentions: ["oof", "twice"])
  }

  func testDeclarationsAreBoundedBeforeAllocating() throws {
    func result(_ tensorJSON: String) -> [[UInt8]] {
      [Array("QRM".utf8) + [1, 5] + Array("{\"task\":\"t\",\"attempt\":1,\"tensors\":[\(tensorJSON)]}".utf8), [0]]
    }
    assertRejected(result("{\"name\":\"huge\",\"shape\":[100000,100000],\"precision\":\"float32\",\"chunks\":[4]}"), mentions: ["huge", "more than"])
    // [2³², 2³²]: a wrapping product (0) passed the bound and the decoder trapped.
    assertRejected(result("{\"name\":\"oof\",\"shape\":[4294967296,4294967296],\"precision\":\"float32\",\"chunks\":[0]}"), mentions: ["oof", "more than"])
    assertRejected(result("{\"name\":\"oof\",\"shape\":[65536,65536,65536,65536],\"precision\":\"float32\",\"chunks\":[0]}"), mentions: ["oof", "more than"])
    assertRejected(result("{\"name\":\"deep\",\"shape\":[1,1,1,1,1],\"precision\":\"float32\",\"chunks\":[4]}"), mentions: ["deep", "dimensions"])
    assertRejected(result("{\"name\":\"lying\",\"shape\":[10],\"precision\":\"float32\",\"chunks\":[8]}"), mentions: ["lying", "hold 8 bytes", "needs 40"])
    assertRejected(result("{\"name\":\"big\",\"shape\":[2000000],\"precision\":\"float32\",\"chunks\":[8000000]}"), mentions: ["big", "chunk sizes"])
    let files = [Array("QRM".utf8) + [1, 5] + Array("{\"task\":\"t\",\"attempt\":1,\"tensors\":[],\"files\":[{\"name\":\"ckpt\",\"chunks\":[\(String(repeating: "4194304,", count: 300))0]}]}".utf8), [0]]
    assertRejected(files, mentions: ["file ckpt", "more than"])
    let metadata = [UInt8](repeating: 0x20, count: Framing.maximumMetadataBytes + 1)
    assertRejected([Array("QRM".utf8) + [1, 3] + metadata], mentions: ["metadata", "at most"])
  }

  /// Shuffled bytes compress: on smooth logits, float16 + shuffle + LZ4 is well under 2
  /// bytes per value, float32 + shuffle + LZ4 under 4.
  func testShuffledLZ4ShrinksLogits() throws {
    let smooth = WireTensor(name: "l", shape: [10_000], values: (0..<10_000).map { Float(Int($0 % 100) - 50) * 0.25 })
    let float32 = try Framing.encode(.result(TaskResult(task: "t", attempt: 1, tensors: [smooth])))[1].count
    var half = smooth
    half.precision = .float16
    let float16 = try Framing.encode(.result(TaskResult(task: "t", attempt: 1, tensors: [half])))[1].count
    XCTAssertLessThan(Double(float32) / 10_000, 4)
    XCTAssertLessThan(Double(float16) / 10_000, 2)
  }
}
