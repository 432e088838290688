// libFuzzer target: every reader of a file a user hands Quorum, on any bytes: IDX (images
// and labels), gzip, .npy, PNG and JPEG, CSV and safetensors. Built by scripts/fuzz.sh together
// with the readers' sources (one module); a crash, trap, leak or out-of-bounds access
// fails it. The first byte picks the reader; the rest is the file.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReaders(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
  guard size >= 1 else { return 0 }
  let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
  switch data[0] % 7 {
  case 0: _ = try? IDX.parse(bytes, path: "fuzz.idx", dimensions: 3)
  case 1: _ = try? IDX.parse(bytes, path: "fuzz.idx", dimensions: 1)
  case 2: _ = try? NumPy.parse(bytes, path: "fuzz.npy")
  case 3: _ = try? ImageCodec.decode(bytes, path: "fuzz.img", channels: data[0] & 8 == 0 ? 1 : 3)
  case 4: _ = try? CSV.parse(String(decoding: bytes, as: UTF8.self), path: "fuzz.csv")
  case 5: _ = try? FileBytes.gunzip(bytes, path: "fuzz.gz")
  default: _ = try? Safetensors.parse(bytes, path: "fuzz.safetensors")
  }
  return 0
}
