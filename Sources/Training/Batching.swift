/// How an epoch's examples are cut into mini-batches.
public enum Batching: String, Codable, CaseIterable, Sendable {
  /// As few batches of at most the batch size as hold the epoch, of sizes that differ by
  /// one at most: 11,909 examples in batches of 128 are 94 batches of 126 or 127. No batch
  /// is a handful of examples whose batch-normalisation statistics make one wild step an
  /// epoch (see `Trainer.batches`).
  case even
  /// Full batches and what is left, last: PyTorch's `DataLoader` with `drop_last=False`.
  /// 11,909 examples in batches of 128 are 93 batches of 128 and one of 5.
  case ragged
}

extension KeyedDecodingContainer {
  /// A configuration saved before `batching` existed (a state file to resume from) has
  /// no such key and was cut evenly. The synthesised `Decodable` of
  /// `TrainingConfiguration` calls this overload, the most specific for the type.
  func decode(_ type: Batching.Type, forKey key: Key) throws -> Batching {
    try decodeIfPresent(type, forKey: key) ?? .even
  }
}
