/// Successive halving's book-keeping for trials that each train on several folds: a trial's
/// score at a rung is the mean of its folds' scores there, known once the last of its folds
/// reports that epoch; the trial is then judged against the trials judged at that rung
/// before it. A stopped trial's other folds are told at their next report, whatever the
/// epoch. Every verdict follows from the order of the reports alone, so replaying them (a
/// restarted coordinator reading its progress log) rebuilds the same ledger.
public struct RungLedger: Sendable {
  /// Why a trial stops: its mean score at the rung, and the rung's count then.
  public struct Stop: Equatable, Sendable {
    public var trial: Int
    /// The rung's epoch.
    public var epoch: Int
    /// The trial's score there: the mean over its folds.
    public var score: Double
    /// How many trials the rung keeps of the `judged` judged there so far.
    public var kept: Int
    public var judged: Int
  }

  public let halving: SuccessiveHalving
  /// How many folds each trial trains on.
  public let foldsPerTrial: Int
  /// Rung epoch → the trials' mean scores judged there, in order.
  private var judgedScores: [Int: [Double]] = [:]
  /// (trial, epoch) → fold → score, for rungs a trial has not finished reporting.
  private var waiting: [RungKey: [Int: Double]] = [:]
  /// (trial, epoch) pairs judged: a retried attempt's reports count once.
  private var judged: Set<RungKey> = []
  /// Trial → why it stopped.
  private var stops: [Int: Stop] = [:]

  private struct RungKey: Hashable, Sendable {
    var trial: Int
    var epoch: Int
  }

  public init(halving: SuccessiveHalving, foldsPerTrial: Int) {
    precondition(foldsPerTrial >= 1, "a trial trains on at least one fold")
    self.halving = halving
    self.foldsPerTrial = foldsPerTrial
  }

  /// Records fold `fold` of trial `trial` scoring `score` after `epoch` epochs; returns the
  /// stop that task should obey, or nil to go on.
  public mutating func record(trial: Int, fold: Int, epoch: Int, score: Double) -> Stop? {
    if let stop = stops[trial] { return stop }
    guard halving.rungs.contains(epoch) else { return nil }
    // A diverged trial's NaN ranks below every score, not beside them.
    let score = score.isNaN ? -Double.infinity : score
    let key = RungKey(trial: trial, epoch: epoch)
    guard !judged.contains(key) else { return nil }
    // The first report of each fold at this rung counts (a retried attempt's is a repeat).
    if waiting[key]?[fold] == nil { waiting[key, default: [:]][fold] = score }
    guard let folds = waiting[key], folds.count == foldsPerTrial else { return nil }
    waiting[key] = nil
    judged.insert(key)
    // Summed in fold order, so that the mean does not depend on which fold came first.
    let mean = folds.keys.sorted().reduce(0) { $0 + folds[$1]! } / Double(foldsPerTrial)
    let earlier = judgedScores[epoch, default: []]
    judgedScores[epoch, default: []].append(mean)
    guard !halving.continues(score: mean, atEpoch: epoch, earlier: earlier) else { return nil }
    let stop = Stop(trial: trial, epoch: epoch, score: mean, kept: max((earlier.count + 1) / halving.reduction, 1), judged: earlier.count + 1)
    stops[trial] = stop
    return stop
  }

  /// Why trial `trial` was stopped, if it was.
  public func stop(of trial: Int) -> Stop? { stops[trial] }
}
