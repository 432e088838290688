// libFuzzer target: the wire decoder (`Framing.decode`) and the coordinator's first look at
// a result (`Framing.resultDeclaration`) on any frames. Built by scripts/fuzz.sh together
// with Sources/Wire (one module); a crash, trap, leak or out-of-bounds access fails it.
//
// An input is: the message type, a flags byte (bit 0: each frame's bytes are LZ4-compressed
// by the harness first, so that valid frames, and the decoding behind them, are reached),
// then chunks of a 2-byte little-endian length and its bytes: the metadata, then the frames.
// The harness writes the "QRM" magic and version itself, so that the fuzzer starts inside.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  let input = Array(UnsafeBufferPointer(start: data, count: size))
  guard input.count >= 2 else { return 0 }
  let (type, compress) = (input[0], input[1] & 1 == 1)
  var chunks: [[UInt8]] = []
  var offset = 2
  while offset + 2 <= input.count {
    let length = min(Int(input[offset]) | Int(input[offset + 1]) << 8, input.count - offset - 2)
    chunks.append(Array(input[(offset + 2)..<(offset + 2 + length)]))
    offset += 2 + length
  }
  guard let metadata = chunks.first else { return 0 }
  var frames = [Array("QRM".utf8) + [Framing.version, type] + metadata]
  for chunk in chunks.dropFirst() { frames.append(compress ? ((try? LZ4Frame.compress(chunk)) ?? chunk) : chunk) }
  _ = Framing.resultDeclaration(frames)
  _ = try? Framing.decode(frames)
  return 0
}
