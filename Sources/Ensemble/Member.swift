/// One trained variant: its out-of-fold predictions over the whole training set (each
/// example predicted by the fold model that did not train on it) and its test predictions
/// (the fold models' probabilities averaged).
public struct Member: Sendable {
  public var name: String
  public var outOfFold: Predictions
  public var test: Predictions?
  /// The test predictions of the variant retrained on the whole training set, where it was
  /// (logits/VARIANT/all.test.npy).
  public var refitTest: Predictions?

  public init(name: String, outOfFold: Predictions, test: Predictions?, refitTest: Predictions? = nil) {
    self.name = name
    self.outOfFold = outOfFold
    self.test = test
    self.refitTest = refitTest
  }
}
