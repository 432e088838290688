import ArgumentParser
import Foundation
import Status

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Show a running coordinator's state: tasks by state, workers, throughput, failures.",
    discussion: """
      Reads the coordinator's status endpoint (quorum coordinator --status HOST:PORT). Exit code 0: \
      reachable (the container health check); 1: not reachable or not a Quorum coordinator.
      """)

  @Argument(help: "The status endpoint, e.g. http://127.0.0.1:8750.") var endpoint: String = "http://127.0.0.1:8750"
  @Flag(help: "Print the JSON as served.") var json = false
  @Flag(help: "Print the Prometheus metrics as served.") var metrics = false

  func run() throws {
    do {
      if metrics {
        let (code, body) = try StatusClient.get(endpoint, path: "/metrics")
        guard code == 200 else { throw StatusError("\(endpoint)/metrics answered \(code)") }
        print(String(decoding: body, as: UTF8.self), terminator: "")
        return
      }
      let status = try StatusClient.status(endpoint)
      if json {
        print(String(decoding: try StatusJSON.encode(status), as: UTF8.self))
        return
      }
      let tasks = status.tasks
      print("\(status.experiment): \(tasks.stored) stored, \(tasks.running) running, \(tasks.pending) pending, \(tasks.failed) failed of \(tasks.total)\(status.finished ? " (finished)" : "")")
      print(String(format: "up %.0f s, %d workers, %.0f img/s; %d results stored, %d discarded, %d refused, %d leases expired, %d messages rejected",
        status.uptimeSeconds, status.workers.count, status.imagesPerSecond, status.counters.resultsStored,
        status.counters.resultsDiscarded, status.counters.resultsRefused, status.counters.leasesExpired, status.counters.messagesRejected))
      for worker in status.workers {
        var line = "  \(worker.name)  "
        if let task = worker.task, let epoch = worker.epoch {
          line += String(format: "%@  epoch %d  loss %.3f  %.0f img/s", task, epoch, worker.loss ?? .nan, worker.imagesPerSecond ?? 0)
        } else {
          line += worker.busy ? "starting a task" : "idle"
        }
        print(line + String(format: "  (heard %.1f s ago)", worker.secondsSinceHeard))
      }
      for (task, reason) in status.failures.sorted(by: { $0.key < $1.key }) { print("  failed: \(task): \(reason)") }
    } catch let error as StatusError {
      FileHandle.standardError.write(Data("quorum status: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}
