import Cluster
import Experiment
import Foundation
import Search
import Wire

/// A search's successive halving on the coordinator: the ledger of its rungs (Search's
/// RungLedger) fed with the trials' reports in the order they came. Every decision follows
/// from that order alone, so replaying the rung reports of the journal after a restart
/// rebuilds it.
public final class SearchRungs: @unchecked Sendable {
  public let plan: SearchPlan
  private let lock = NSLock()
  private var ledger: RungLedger

  public init?(_ plan: SearchPlan) {
    guard let halving = plan.halving else { return nil }
    self.plan = plan
    ledger = RungLedger(halving: halving, foldsPerTrial: plan.folds.count)
  }

  /// Why `report`'s trial should stop after this epoch, or nil.
  public func decide(_ report: ProgressReport) -> String? {
    guard let (trial, fold) = Self.trial(of: report.task, plan), let score = report.validationMetric else { return nil }
    lock.lock()
    defer { lock.unlock() }
    guard let stop = ledger.record(trial: trial, fold: fold, epoch: report.epoch, score: score) else { return nil }
    let mean = plan.folds.count == 1 ? "" : " (the mean of its \(plan.folds.count) folds)"
    return String(
      format: "successive halving: %@ %.4f%@ is not among the best %d of the %d trials at epoch %d",
      plan.metric.spelling, stop.score, mean, stop.kept, stop.judged, stop.epoch)
  }

  /// The epoch a trial was stopped after, if it was.
  public func stopped(_ trial: Int) -> Int? {
    lock.lock()
    defer { lock.unlock() }
    return ledger.stop(of: trial)?.epoch
  }

  /// Whether the coordinator decides on `report` (a trial's score at a rung): it is
  /// journalled first.
  public func isRungReport(_ report: ProgressReport) -> Bool {
    Self.trial(of: report.task, plan) != nil && report.validationMetric != nil && (plan.halving?.rungs.contains(report.epoch) ?? false)
  }

  /// Replays the rung reports of the run's journal (a restarted coordinator, a report made
  /// afterwards), sending nothing: the same decisions, in the same order.
  public func replay(journal path: String) {
    // A journal that cannot be read is the coordinator's to report (it reads it next).
    for event in (try? Journal.read(path)) ?? [] where event.kind == .reported {
      if let report = event.progress { _ = decide(report) }
    }
  }

  /// The trial index and fold of a task id "trial-N/foldF" of one of the search's folds.
  public static func trial(of task: String, _ plan: SearchPlan) -> (trial: Int, fold: Int)? {
    let parts = task.split(separator: "/")
    guard parts.count == 2, parts[0].hasPrefix("trial-"), parts[1].hasPrefix("fold"),
      let trial = Int(parts[0].dropFirst("trial-".count)), let fold = Int(parts[1].dropFirst("fold".count)), plan.folds.contains(fold)
    else { return nil }
    return (trial, fold)
  }
}
