import Cluster

/// A status in Prometheus' text exposition format (version 0.0.4): gauges for the present
/// state, counters for events since the coordinator started.
public enum PrometheusText {
  public static func render(_ status: CoordinatorStatus) -> String {
    var lines: [String] = []
    func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
      lines.append("# HELP quorum_\(name) \(help)")
      lines.append("# TYPE quorum_\(name) \(type)")
      for sample in samples { lines.append("quorum_\(name)\(sample.labels) \(format(sample.value))") }
    }
    let tasks = status.tasks
    metric("tasks", "gauge", "Tasks of the experiment by state.", [
      ("{state=\"pending\"}", Double(tasks.pending)), ("{state=\"running\"}", Double(tasks.running)),
      ("{state=\"stored\"}", Double(tasks.stored)), ("{state=\"failed\"}", Double(tasks.failed)),
    ])
    metric("tasks_total", "gauge", "Tasks in the experiment.", [("", Double(tasks.total))])
    metric("workers", "gauge", "Workers connected, by whether they hold a task.", [
      ("{busy=\"true\"}", Double(status.workers.filter(\.busy).count)),
      ("{busy=\"false\"}", Double(status.workers.filter { !$0.busy }.count)),
    ])
    metric("images_per_second", "gauge", "Training throughput summed over the workers' latest reports.", [("", status.imagesPerSecond)])
    metric("worker_images_per_second", "gauge", "Each busy worker's training throughput.",
      status.workers.compactMap { worker in worker.imagesPerSecond.map { ("{worker=\"\(escape(worker.name))\"}", $0) } })
    metric("finished", "gauge", "1 when every task is stored or failed.", [("", status.finished ? 1 : 0)])
    metric("uptime_seconds", "gauge", "Seconds since the coordinator started.", [("", status.uptimeSeconds)])
    let counters = status.counters
    metric("messages_received_total", "counter", "Messages received from workers.", [("", Double(counters.messagesReceived))])
    metric("messages_rejected_total", "counter", "Malformed or unexpected messages dropped.", [("", Double(counters.messagesRejected))])
    metric("results_stored_total", "counter", "Results stored in the run directory.", [("", Double(counters.resultsStored))])
    metric("results_discarded_total", "counter", "Late or duplicate results discarded.", [("", Double(counters.resultsDiscarded))])
    metric("results_refused_total", "counter", "Results refused as not what their task returns (attempts failed).", [("", Double(counters.resultsRefused))])
    metric("leases_expired_total", "counter", "Task leases that expired (a worker fell silent).", [("", Double(counters.leasesExpired))])
    metric("workers_lost_total", "counter", "Workers given up on after missed heartbeats.", [("", Double(counters.workersLost))])
    metric("data_bytes_served_total", "counter", "Bytes sent to workers fetching the served data set, as on the wire (LZ4).", [("", Double(counters.dataBytesServed))])
    return lines.joined(separator: "\n") + "\n"
  }

  /// Label values escape backslash, quote and newline.
  static func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
  }

  static func format(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
  }
}
