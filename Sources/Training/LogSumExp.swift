import Foundation

/// log Σᵢ exp(xᵢ) over `count` values, the largest subtracted first so that no term
/// overflows: the normaliser of every softmax outside the backends' loss kernels (the
/// ensemble's predictions and stackers, test-time augmentation). `ClassificationMetrics`
/// folds the same sum into its one pass over a row.
@inlinable
public func logSumExp(count: Int, _ value: (Int) -> Double) -> Double {
  var largest = -Double.infinity
  for i in 0..<count { largest = max(largest, value(i)) }
  var sum = 0.0
  for i in 0..<count { sum += exp(value(i) - largest) }
  return largest + log(sum)
}
