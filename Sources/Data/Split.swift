import Tensor

/// Splits examples into training and validation parts.
public enum Split {
  /// A stratified holdout: from each class, round(fraction · n_c) examples chosen by a
  /// seeded permutation go to validation. Returns sorted index lists.
  public static func stratifiedHoldout(labels: [Int32], classes: Int, fraction: Double, seed: UInt64) -> (training: [Int], validation: [Int]) {
    var byClass = [[Int]](repeating: [], count: classes)
    for (index, label) in labels.enumerated() { byClass[Int(label)].append(index) }
    var training: [Int] = []
    var validation: [Int] = []
    for (c, members) in byClass.enumerated() {
      let order = RandomStream(seed: seed, purpose: .split, stream: UInt32(c)).permutation(members.count)
      let held = Int((fraction * Double(members.count)).rounded())
      for (rank, position) in order.enumerated() {
        if rank < held { validation.append(members[position]) } else { training.append(members[position]) }
      }
    }
    return (training.sorted(), validation.sorted())
  }
}
