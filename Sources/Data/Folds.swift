import Files
import Tensor

/// A fold assignment: the validation fold of every training example, as saved in a run
/// directory's `folds.npy` (int32 [n]). Every variant of an experiment reuses it, so all
/// members' out-of-fold predictions line up.
public struct FoldAssignment: Equatable, Sendable {
  /// fold[i] ∈ 0..<count: the fold in which example i is held out.
  public var fold: [Int32]
  public var count: Int

  public init(fold: [Int32], count: Int) {
    self.fold = fold
    self.count = count
  }

  /// Stratified k-fold: each class's examples, in a seeded order, are dealt to the folds
  /// in turn, continuing where the previous class stopped. Every fold then holds
  /// floor or ceil of n_c/k examples of class c (within one of exact), and the folds'
  /// sizes differ by at most one.
  public static func stratified(labels: [Int32], classes: Int, folds k: Int, seed: UInt64, repeat round: Int = 0) -> FoldAssignment {
    precondition(k >= 2, "k-fold needs at least 2 folds")
    var byClass = [[Int]](repeating: [], count: classes)
    for (index, label) in labels.enumerated() { byClass[Int(label)].append(index) }
    var fold = [Int32](repeating: 0, count: labels.count)
    var next = 0
    for (c, members) in byClass.enumerated() {
      // The stream depends on the repeat, so repeated k-fold reshuffles every round.
      let random = RandomStream(seed: seed, purpose: .split, stream: UInt32(truncatingIfNeeded: round << 20 | c))
      for position in random.permutation(members.count) {
        fold[members[position]] = Int32(next)
        next = (next + 1) % k
      }
    }
    return FoldAssignment(fold: fold, count: k)
  }

  /// Refuses k folds of a training set with a class of fewer than k examples: some folds
  /// would validate without that class, and their scores (and the out-of-fold predictions
  /// an ensemble learns from) would mean something else. `source` names the data.
  public static func checkStratifiable(classCounts: [Int], folds k: Int, source: String, classNames: [String]? = nil) throws {
    guard let smallest = classCounts.indices.min(by: { classCounts[$0] < classCounts[$1] }), classCounts[smallest] < k else { return }
    let name = classNames.map { $0[smallest] } ?? String(smallest)
    let count = classCounts[smallest]
    // Two folds is the fewest there are: a class below two examples has no k that works.
    let remedy = count >= 2 ? "use at most \(count) folds, or give the class more examples" : "give the class at least 2 examples, or remove it"
    throw DataError(
      file: source, "class \(name) has \(count) examples, fewer than the \(k) folds: \(k - count) folds would validate without it; \(remedy)")
  }

  /// Repeated stratified k-fold: `repeats` independent assignments.
  public static func repeatedStratified(labels: [Int32], classes: Int, folds k: Int, repeats: Int, seed: UInt64) -> [FoldAssignment] {
    (0..<repeats).map { stratified(labels: labels, classes: classes, folds: k, seed: seed, repeat: $0) }
  }

  /// A single stratified holdout as a two-fold assignment: fold 0 validates (a share
  /// `fraction` of every class), fold 1 is never held out.
  public static func holdout(labels: [Int32], classes: Int, fraction: Double, seed: UInt64) -> FoldAssignment {
    let split = Split.stratifiedHoldout(labels: labels, classes: classes, fraction: fraction, seed: seed)
    var fold = [Int32](repeating: 1, count: labels.count)
    for index in split.validation { fold[index] = 0 }
    return FoldAssignment(fold: fold, count: 2)
  }

  /// Training and validation indices of one fold, in example order.
  public func split(_ index: Int) -> (training: [Int], validation: [Int]) {
    precondition((0..<count).contains(index), "fold \(index) outside 0…\(count - 1)")
    var training: [Int] = []
    var validation: [Int] = []
    for (example, f) in fold.enumerated() {
      if Int(f) == index { validation.append(example) } else { training.append(example) }
    }
    return (training, validation)
  }

  public func write(to path: String) throws {
    try FileBytes.writeAtomically(NumPy.encode(fold, shape: [fold.count]), to: path)
  }

  /// The number of folds a folds.npy assigns (its largest index + 1), checking the file.
  public static func count(of path: String) throws -> Int {
    let (dtype, shape, _) = try NumPy.read(path)
    return try read(path, examples: dtype == .int32 && shape.count == 1 ? shape[0] : -1).count
  }

  /// Reads a folds.npy and checks it against the data it must describe.
  public static func read(_ path: String, examples: Int) throws -> FoldAssignment {
    let (dtype, shape, payload) = try NumPy.read(path)
    guard dtype == .int32, shape.count == 1 else {
      throw DataError(file: path, "folds must be int32 [n], found \(dtype.rawValue) \(shape)")
    }
    guard shape[0] == examples else {
      throw DataError(file: path, "assigns \(shape[0]) examples but the training set has \(examples): folds of other data")
    }
    let fold = payload.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    guard let largest = fold.max(), let smallest = fold.min(), smallest >= 0 else {
      throw DataError(file: path, "fold indices must be non-negative")
    }
    let count = Int(largest) + 1
    let sizes = (0..<count).map { f in fold.lazy.filter { Int($0) == f }.count }
    if let empty = sizes.firstIndex(of: 0) { throw DataError(file: path, "fold \(empty) of 0…\(count - 1) is empty") }
    return FoldAssignment(fold: fold, count: count)
  }
}
