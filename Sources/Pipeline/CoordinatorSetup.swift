import Cluster
import Foundation
import RunLayout

/// The coordinator of an experiment: its scheduler resumed from the journal, the result
/// contracts, a search's trial source and rungs, the later phases' preparation and the
/// progress log.
extension ExperimentSetup {
  /// A coordinator for an experiment, resuming from its journal.
  public func makeCoordinator(socket: ZeroMQSocket, log: @escaping (String) -> Void) throws -> Coordinator {
    let setup = self
    let run = RunDirectory(setup.experiment.runDirectory)
    let journalPath = run.journal
    let journal = try Journal(path: journalPath)
    if journal.truncatedBytes > 0 {
      log("\(journalPath): cut off a torn last record (\(journal.truncatedBytes) bytes of an interrupted write; it never took effect)")
    }
    let events = try Journal.read(journalPath)
    let scheduler = Scheduler(tasks: setup.tasks, later: setup.laterPhases, journal: journal, replaying: events)
    if !events.isEmpty {
      let stored = scheduler.count { if case .stored = $0 { return true }; return false }
      log("resuming from \(journalPath): \(stored) of \(scheduler.order.count) tasks already stored")
    }
    let coordinator = Coordinator(
      socket: socket, scheduler: scheduler, settings: setup.settings,
      store: ResultStore(runDirectory: setup.experiment.runDirectory), log: log)
    coordinator.taskSpecification = TaskSpecification.currentVersion
    // The contracts of a phase's tasks follow its preparation (a search's sampled width
    // decides its trials' checkpoints): updated on the preparation thread, read on the loop's.
    let contracts = PhaseContracts(try setup.resultContracts())
    coordinator.contract = { contracts[$0] }
    // A search's trials, proposed as workers free up; their contracts as they are made.
    if setup.experiment.search != nil {
      let source = try SearchTrialSource(setup: setup)
      coordinator.taskSource = { unfinished in
        let proposal = try source.next(unfinished: unfinished)
        if case .tasks(let tasks) = proposal {
          contracts.update(try setup.resultContracts(Dictionary(uniqueKeysWithValues: tasks.map { ($0.task, $0.settings) })))
        }
        return proposal
      }
    }
    // Successive halving: each new report judged (the setup replayed the earlier ones).
    if let rungs = setup.rungs {
      coordinator.journalsProgress = { rungs.isRungReport($0) }
      coordinator.stopReason = { rungs.decide($0) }
    }
    if !setup.laterPhases.isEmpty {
      coordinator.describePhase = { setup.describePhase($0) }
      // On the coordinator's preparation thread: nothing here touches the loop's state.
      coordinator.preparePhase = { phase in
        let payloads = try setup.preparePhase(phase)
        contracts.update(try setup.resultContracts(payloads.mapValues(\.settings)))
        return payloads
      }
    }
    // Every epoch's report, one JSON line each: the report's learning curves. Appended, not
    // fsync'd: losing the last lines in a crash costs a plot's tail, nothing else.
    if let progressLog = FileHandle(forWritingAtPath: run.progress)
      ?? (FileManager.default.createFile(atPath: run.progress, contents: nil) ? FileHandle(forWritingAtPath: run.progress) : nil)
    {
      progressLog.seekToEndOfFile()
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      coordinator.onProgress = { report in
        if let line = try? encoder.encode(report) { progressLog.write(line + Data("\n".utf8)) }
      }
    }
    return coordinator
  }

  /// The tasks that used up their attempts, a line each: the run's failures, and a
  /// search's failed trials apart (a configuration that diverges is one of a search's
  /// answers, its trial without a score, not a failure of the run).
  public func failures(of coordinator: Coordinator) -> (tasks: [String], trials: [String]) {
    var failed: [String] = []
    var failedTrials: [String] = []
    for task in coordinator.scheduler.order {
      guard case .failed(let attempts, let reason) = coordinator.scheduler.states[task] else { continue }
      let line = "  \(task): \(attempts) attempt\(attempts == 1 ? "" : "s"), last: \(reason)"
      if let plan = experiment.search, SearchRungs.trial(of: task, plan) != nil {
        failedTrials.append(line)
      } else {
        failed.append(line)
      }
    }
    return (failed, failedTrials)
  }
}
