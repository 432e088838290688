/// Sizes a file's header declares, multiplied with a check: a header is outside input, and
/// Swift traps on an overflowing `*` (a crash, where the user needs an error naming the
/// file). Readers compare the checked product with the bytes actually present.
public enum DeclaredSize {
  /// The product of `dimensions` if every one is non-negative and the product is at most
  /// `limit`, else nil. No partial product passes the limit, so nothing overflows.
  public static func product(_ dimensions: [Int], limit: Int = Int.max) -> Int? {
    guard dimensions.allSatisfy({ $0 >= 0 }) else { return nil }
    if dimensions.contains(0) { return 0 }
    var product = 1
    for dimension in dimensions {
      guard dimension <= limit / product else { return nil }
      product *= dimension
    }
    return product
  }
}
