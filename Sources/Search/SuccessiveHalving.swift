/// Asynchronous successive halving (ASHA, Li et al. 2020) as early stopping: trials report
/// their validation score at rungs (epochs r, r·η, r·η², …); a trial reaching a rung goes on
/// only if its score is among the top 1/η of the scores reported at that rung so far, its own
/// included. No trial waits for a rung to fill: the first to reach a rung always goes on, and
/// the cut sharpens as more report. Decisions depend on the order of the reports only, so a
/// coordinator replaying its journal makes the same ones.
public struct SuccessiveHalving: Codable, Equatable, Sendable {
  /// The first rung's epoch.
  public var minimumEpochs: Int
  /// The reduction factor: 1/η of a rung goes on to the next, η times as many epochs.
  public var reduction: Int
  /// The epochs a trial runs at most (the last rung is at or below it).
  public var maximumEpochs: Int

  public init(minimumEpochs: Int = 1, reduction: Int = 3, maximumEpochs: Int) throws {
    guard minimumEpochs >= 1 else { throw SearchError("successive halving: the first rung needs at least 1 epoch, got \(minimumEpochs)") }
    guard reduction >= 2 else { throw SearchError("successive halving: the reduction factor η must be at least 2, got \(reduction)") }
    guard maximumEpochs >= minimumEpochs else {
      throw SearchError("successive halving: the trials' \(maximumEpochs) epochs are fewer than the first rung's \(minimumEpochs)")
    }
    self.minimumEpochs = minimumEpochs
    self.reduction = reduction
    self.maximumEpochs = maximumEpochs
  }

  /// The rungs' epochs below the maximum (a trial that reaches the maximum is done, not
  /// judged): r, r·η, r·η², ….
  public var rungs: [Int] {
    var rungs: [Int] = []
    var epoch = minimumEpochs
    while epoch < maximumEpochs {
      rungs.append(epoch)
      epoch *= reduction
    }
    return rungs
  }

  /// Whether a trial that scored `score` at rung `epoch` goes on, given the scores reported
  /// at that rung before it (larger is better). An epoch that is no rung always goes on.
  public func continues(score: Double, atEpoch epoch: Int, earlier: [Double]) -> Bool {
    guard rungs.contains(epoch) else { return true }
    let all = earlier + [score]
    // The top ⌊n/η⌋ go on, at least one: the best so far always does.
    let kept = max(all.count / reduction, 1)
    let better = all.filter { $0 > score }.count
    return better < kept
  }
}
