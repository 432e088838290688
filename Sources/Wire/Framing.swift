import Foundation

/// Messages to ZeroMQ frames and back (docs/protocol.md), with every bound checked before
/// anything is allocated.
public enum Framing {
  public static let version: UInt8 = 1
  static let magic: [UInt8] = Array("QRM".utf8)
  /// Limits a receiver enforces.
  public static let maximumMetadataBytes = 64 * 1024
  public static let maximumTensors = 64
  public static let maximumDimensions = 4
  public static let maximumElements = 1 << 28
  public static let maximumFiles = 4
  public static let maximumFileBytes = 1 << 30
  /// Raw bytes per chunk (one LZ4 frame each).
  public static let chunkBytes = 4 << 20

  struct ResultMetadata: Codable {
    var task: String
    var attempt: Int
    var tensors: [TensorDescription]
    var files: [FileDescription]?
  }

  struct Reason: Codable { var reason: String }

  struct TaskMetadata: Codable {
    var task: String
    var attempt: Int
    var settings: String
    var tensors: [TensorDescription]?
    var data: DataOffer?
  }

  struct DataChunkMetadata: Codable {
    var hash: String
    var offset: Int
    var total: Int
    var length: Int
    var refusal: String?
  }

  // MARK: Encoding

  public static func encode(_ message: Message) throws -> [[UInt8]] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var tensorFrames: [[UInt8]] = []
    let metadata: Data
    switch message {
    case .hello(let hello): metadata = try encoder.encode(hello)
    case .task(let task):
      let descriptions = try task.tensors.map { try encode($0, into: &tensorFrames) }
      metadata = try encoder.encode(TaskMetadata(
        task: task.task, attempt: task.attempt, settings: task.settings, tensors: descriptions.isEmpty ? nil : descriptions, data: task.data))
    case .heartbeat: metadata = Data("{}".utf8)
    case .progress(let progress): metadata = try encoder.encode(progress)
    case .acknowledgement(let acknowledgement): metadata = try encoder.encode(acknowledgement)
    case .disconnect(let reason), .reject(let reason): metadata = try encoder.encode(Reason(reason: reason))
    case .failure(let failure): metadata = try encoder.encode(failure)
    case .stop(let stop): metadata = try encoder.encode(stop)
    case .dataRequest(let request): metadata = try encoder.encode(request)
    case .dataChunk(let chunk):
      guard chunk.bytes.count <= chunkBytes else { throw WireError("a data chunk of \(chunk.bytes.count) bytes, at most \(chunkBytes)") }
      metadata = try encoder.encode(DataChunkMetadata(
        hash: chunk.hash, offset: chunk.offset, total: chunk.total, length: chunk.bytes.count, refusal: chunk.refusal))
      if chunk.refusal == nil { tensorFrames = [try LZ4Frame.compress(chunk.bytes)] }
    case .result(let result):
      let descriptions = try result.tensors.map { try encode($0, into: &tensorFrames) }
      var fileDescriptions: [FileDescription] = []
      for file in result.files {
        let (chunks, frames) = try compressChunks(file.bytes)
        fileDescriptions.append(FileDescription(name: file.name, chunks: chunks))
        tensorFrames += frames
      }
      metadata = try encoder.encode(ResultMetadata(
        task: result.task, attempt: result.attempt, tensors: descriptions, files: fileDescriptions.isEmpty ? nil : fileDescriptions))
    }
    return [magic + [version, message.type] + [UInt8](metadata)] + tensorFrames
  }

  /// A tensor's description; its frames are appended to `frames`.
  static func encode(_ tensor: WireTensor, into frames: inout [[UInt8]]) throws -> TensorDescription {
    let (description, tensorFrames) = try encode(tensor)
    frames += tensorFrames
    return description
  }

  static func encode(_ tensor: WireTensor) throws -> (TensorDescription, [[UInt8]]) {
    var raw: [UInt8] = []
    raw.reserveCapacity(tensor.values.count * tensor.precision.size)
    switch tensor.precision {
    case .float32:
      for value in tensor.values { withUnsafeBytes(of: value.bitPattern.littleEndian) { raw += $0 } }
    case .float16:
      for value in tensor.values { withUnsafeBytes(of: Precision.toFloat16(value).littleEndian) { raw += $0 } }
    case .bfloat16:
      for value in tensor.values { withUnsafeBytes(of: Precision.toBFloat16(value).littleEndian) { raw += $0 } }
    }
    let (chunks, frames) = try compressChunks(ByteShuffle.shuffle(raw, elementSize: tensor.precision.size))
    return (TensorDescription(name: tensor.name, shape: tensor.shape, precision: tensor.precision, chunks: chunks), frames)
  }

  /// Bytes as LZ4 frames of at most `chunkBytes` raw bytes each (at least one frame).
  static func compressChunks(_ bytes: [UInt8]) throws -> (chunks: [Int], frames: [[UInt8]]) {
    var chunks: [Int] = []
    var frames: [[UInt8]] = []
    var start = 0
    repeat {
      let end = min(start + chunkBytes, bytes.count)
      frames.append(try LZ4Frame.compress(Array(bytes[start..<end])))
      chunks.append(end - start)
      start = end
    } while start < bytes.count
    return (chunks, frames)
  }

  // MARK: Decoding

  public static func decode(_ frames: [[UInt8]]) throws -> Message {
    guard let header = frames.first else { throw WireError("no frames") }
    guard header.count >= 5, Array(header.prefix(3)) == magic else {
      throw WireError("the header does not start with QRM: not a Quorum message")
    }
    guard header[3] == version else {
      throw WireError("protocol version \(header[3]); this build speaks version \(version)")
    }
    let type = header[4]
    let metadata = Data(header.dropFirst(5))
    guard metadata.count <= maximumMetadataBytes else {
      throw WireError("type \(type): \(metadata.count) bytes of metadata, at most \(maximumMetadataBytes)")
    }
    let decoder = JSONDecoder()
    func payload<T: Decodable>(_ kind: T.Type, _ name: String) throws -> T {
      do { return try decoder.decode(kind, from: metadata) } catch {
        throw WireError("\(name): its metadata is not valid (\(Self.describe(error)))")
      }
    }
    func noTensors(_ name: String) throws {
      guard frames.count == 1 else { throw WireError("\(name): \(frames.count - 1) unexpected frames after the header") }
    }
    switch type {
    case 1: try noTensors("hello"); return .hello(try payload(Hello.self, "hello"))
    case 2:
      let task = try payload(TaskMetadata.self, "task")
      let decoded = try decodeTensors(
        task.tensors ?? [], files: [], frames: Array(frames.dropFirst()), label: "task \(task.task) attempt \(task.attempt)")
      return .task(TaskAssignment(task: task.task, attempt: task.attempt, settings: task.settings, tensors: decoded.tensors, data: task.data))
    case 3: try noTensors("heartbeat"); return .heartbeat
    case 4: try noTensors("progress"); return .progress(try payload(ProgressReport.self, "progress"))
    case 5: return .result(try decodeResult(try payload(ResultMetadata.self, "result"), frames: Array(frames.dropFirst())))
    case 6: try noTensors("ack"); return .acknowledgement(try payload(Acknowledgement.self, "ack"))
    case 7: try noTensors("disconnect"); return .disconnect(reason: try payload(Reason.self, "disconnect").reason)
    case 8: try noTensors("reject"); return .reject(reason: try payload(Reason.self, "reject").reason)
    case 9: try noTensors("failure"); return .failure(try payload(TaskFailure.self, "failure"))
    case 10: try noTensors("stop"); return .stop(try payload(TaskStop.self, "stop"))
    case 11: try noTensors("data request"); return .dataRequest(try payload(DataRequest.self, "data request"))
    case 12:
      let chunk = try payload(DataChunkMetadata.self, "data chunk")
      let label = "data chunk \(chunk.hash.prefix(12)) at \(chunk.offset)"
      guard chunk.length >= 0, chunk.length <= chunkBytes, chunk.offset >= 0, chunk.total >= 0, chunk.total <= maximumFileBytes * 64,
        chunk.offset <= chunk.total - chunk.length
      else { throw WireError("\(label): \(chunk.length) bytes at \(chunk.offset) of \(chunk.total) do not fit (at most \(chunkBytes) a chunk)") }
      if let refusal = chunk.refusal {
        try noTensors("data refusal")
        return .dataChunk(DataChunk(hash: chunk.hash, offset: chunk.offset, total: chunk.total, bytes: [], refusal: refusal))
      }
      guard frames.count == 2 else { throw WireError("\(label): \(frames.count - 1) frames after the header, expected one") }
      let bytes = try LZ4Frame.decompress(frames[1], expected: chunk.length, context: label)
      return .dataChunk(DataChunk(hash: chunk.hash, offset: chunk.offset, total: chunk.total, bytes: bytes))
    default: throw WireError("unknown message type \(type)")
    }
  }

  static func decodeResult(_ metadata: ResultMetadata, frames: [[UInt8]]) throws -> TaskResult {
    let decoded = try decodeTensors(
      metadata.tensors, files: metadata.files ?? [], frames: frames, label: "result of \(metadata.task) attempt \(metadata.attempt)")
    return TaskResult(task: metadata.task, attempt: metadata.attempt, tensors: decoded.tensors, files: decoded.files)
  }

  /// The tensors and files a message's metadata declares, from its frames: every
  /// declaration checked before anything is decoded or allocated.
  static func decodeTensors(
    _ descriptions: [TensorDescription], files: [FileDescription], frames: [[UInt8]], label: String
  ) throws -> (tensors: [WireTensor], files: [WireFile]) {
    let metadata = (tensors: descriptions, files: files)
    guard metadata.tensors.count <= maximumTensors else {
      throw WireError("\(label): \(metadata.tensors.count) tensors, at most \(maximumTensors)")
    }
    guard files.count <= maximumFiles else {
      throw WireError("\(label): \(files.count) files, at most \(maximumFiles)")
    }
    // Check every declaration before decoding (or allocating) anything.
    var expectedFrames = 0
    func checkChunks(_ chunks: [Int], of name: String) throws {
      guard !chunks.isEmpty, chunks.allSatisfy({ (0...chunkBytes).contains($0) }) else {
        throw WireError("\(name): chunk sizes \(chunks.prefix(4)) (each 0…\(chunkBytes) bytes, at least one)")
      }
      expectedFrames += chunks.count
    }
    var names = Set<String>()
    for declared in metadata.tensors.map(\.name) + files.map(\.name) {
      guard WireName.isValid(declared) else {
        throw WireError("\(label): tensor or file name \"\(declared.prefix(80))\" (1…\(WireName.maximumLength) letters, digits, - or _)")
      }
      guard names.insert(declared).inserted else { throw WireError("\(label): the name \(declared) is declared twice") }
    }
    for description in metadata.tensors {
      let name = "\(label), tensor \(description.name)"
      guard description.shape.count <= maximumDimensions, description.shape.allSatisfy({ $0 >= 0 }) else {
        throw WireError("\(name): shape \(description.shape) (at most \(maximumDimensions) non-negative dimensions)")
      }
      // Multiplied with a check: a wrapped product ([2³², 2³²] is 0) would pass the bound.
      guard let elements = boundedProduct(description.shape, limit: maximumElements) else {
        throw WireError("\(name): shape \(description.shape) declares more than \(maximumElements) values")
      }
      try checkChunks(description.chunks, of: name)
      guard description.chunks.reduce(0, +) == elements * description.precision.size else {
        throw WireError("\(name): chunks hold \(description.chunks.reduce(0, +)) bytes, shape \(description.shape) of \(description.precision.rawValue) needs \(elements * description.precision.size)")
      }
    }
    for description in files {
      let name = "\(label), file \(description.name)"
      try checkChunks(description.chunks, of: name)
      guard description.chunks.count <= maximumFileBytes / chunkBytes + 1, description.chunks.reduce(0, +) <= maximumFileBytes else {
        throw WireError("\(name): declares more than \(maximumFileBytes) bytes")
      }
    }
    guard frames.count == expectedFrames else {
      throw WireError("\(label): \(frames.count) tensor frames, the metadata declares \(expectedFrames)")
    }
    var tensors: [WireTensor] = []
    var next = 0
    func decompressChunks(_ chunks: [Int], of name: String) throws -> [UInt8] {
      var bytes: [UInt8] = []
      bytes.reserveCapacity(chunks.reduce(0, +))
      for (index, size) in chunks.enumerated() {
        bytes += try LZ4Frame.decompress(frames[next], expected: size, context: "\(label), \(name), chunk \(index)")
        next += 1
      }
      return bytes
    }
    for description in metadata.tensors {
      let shuffled = try decompressChunks(description.chunks, of: "tensor \(description.name)")
      let size = description.precision.size
      let raw = ByteShuffle.unshuffle(shuffled, elementSize: size)
      let count = raw.count / size
      var values = [Float](repeating: 0, count: count)
      raw.withUnsafeBytes { bytes in
        for i in 0..<count {
          switch description.precision {
          case .float32: values[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
          case .float16: values[i] = Precision.fromFloat16(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
          case .bfloat16: values[i] = Precision.fromBFloat16(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
          }
        }
      }
      tensors.append(WireTensor(name: description.name, shape: description.shape, values: values, precision: description.precision))
    }
    let decodedFiles = try files.map { WireFile(name: $0.name, bytes: try decompressChunks($0.chunks, of: "file \($0.name)")) }
    return (tensors, decodedFiles)
  }

  /// The product of `factors` if it is at most `limit` (all non-negative), else nil: no
  /// partial product is allowed past the limit, so nothing can overflow.
  static func boundedProduct(_ factors: [Int], limit: Int) -> Int? {
    if factors.contains(0) { return 0 }
    var product = 1
    for factor in factors {
      guard factor <= limit / product else { return nil }
      product *= factor
    }
    return product
  }

  static func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
      return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
    case DecodingError.dataCorrupted: return "not JSON"
    default: return "\(error)"
    }
  }
}
