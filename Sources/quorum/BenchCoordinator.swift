import ArgumentParser
import Cluster
import Data
import Files
import Foundation
import Wire

extension Bench {
  /// The coordinator under load: real sockets on loopback, the fsync'd journal and the
  /// result store, with in-process workers whose tasks only wait a fixed time and return
  /// logits (so the coordinator, not training, is what is measured).
  struct CoordinatorLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "coordinator",
      abstract: "Tasks and messages per second a coordinator handles (one JSON line).")

    @Option(help: "Workers (threads of this process, each with its own DEALER socket).") var workers: Int = 64
    @Option(help: "Tasks in the experiment.") var tasks: Int = 2000
    @Option(help: "Seconds each task takes on its worker.") var taskSeconds: Double = 0
    @Option(help: "Logit rows each result carries (10 classes).") var rows: Int = 1000
    @Option(help: "Progress reports per task.") var progressReports: Int = 2

    func run() throws {
      let folder = FileManager.default.temporaryDirectory.appendingPathComponent("quorum-bench-\(getpid())").path
      defer { try? FileManager.default.removeItem(atPath: folder) }
      try Folders.create(folder)
      let ids = (0..<tasks).map { "v\($0 % 8)/fold\($0 / 8)" }
      let scheduler = Scheduler(tasks: ids, journal: try Journal(path: folder + "/journal.jsonl"))
      let context = ZeroMQContext()
      let socket = try ZeroMQSocket(.router, context: context)
      try socket.bind("tcp://127.0.0.1:*")
      let coordinator = Coordinator(
        socket: socket, scheduler: scheduler, settings: [:], store: ResultStore(runDirectory: folder))
      let logits = (0..<(rows * 10)).map { Float(sin(Double($0))) * 4 }
      let workerContext = ZeroMQContext()
      let (taskSeconds, rows, progressReports) = (taskSeconds, rows, progressReports)
      let finished = DispatchGroup()
      for index in 0..<workers {
        let worker = Worker(name: "bench-\(index)", endpoint: socket.lastEndpoint, context: workerContext) { task, progress in
          for epoch in 0..<progressReports {
            progress(ProgressReport(task: task.task, attempt: task.attempt, epoch: epoch, loss: 1, validationMetric: nil, imagesPerSecond: 1000))
          }
          if taskSeconds > 0 { Thread.sleep(forTimeInterval: taskSeconds) }
          return TaskOutput(tensors: [WireTensor(name: "oof", shape: [rows, 10], values: logits)])
        }
        finished.enter()
        Thread {
          try? worker.run()
          finished.leave()
        }.start()
      }
      let start = Date()
      try coordinator.run()
      let seconds = Date().timeIntervalSince(start)
      finished.wait()
      let counters = coordinator.counters
      let report: [String: Any] = [
        "workers": workers, "tasks": tasks, "task_seconds": taskSeconds, "rows": rows, "seconds": seconds,
        "tasks_per_second": Double(counters.resultsStored) / seconds,
        "messages_per_second": Double(counters.messagesReceived) / seconds,
        "messages": counters.messagesReceived, "stored": counters.resultsStored, "discarded": counters.resultsDiscarded,
        "ideal_seconds": taskSeconds * Double(tasks) / Double(workers),
      ]
      print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
    }
  }
}
