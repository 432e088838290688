import Foundation

/// The worker processes of `quorum run` on this machine: started with the coordinator's
/// endpoint, each started again when it exits before the experiment is finished (its lease
/// goes back when the new process says hello), up to a limit, so that a task that kills
/// every worker it meets ends at the scheduler's retry limit rather than looping.
public final class LocalWorkers {
  /// Worker i's command line (after the executable).
  public typealias Arguments = (_ index: Int) -> [String]

  public let executable: URL
  private let arguments: Arguments
  private let restartLimit: Int
  public private(set) var processes: [Process] = []
  public private(set) var restarts = 0

  public init(executable: URL, count: Int, restartLimit: Int, arguments: @escaping Arguments) throws {
    self.executable = executable
    self.arguments = arguments
    self.restartLimit = restartLimit
    for index in 0..<count { processes.append(try start(index)) }
  }

  /// The worker's name for the user (its --name, as `arguments` sets it).
  public static func name(_ index: Int) -> String { "local-\(index + 1)" }

  private func start(_ index: Int) throws -> Process {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments(index)
    try process.run()
    return process
  }

  /// Starts again every worker that exited, while restarts are left; says so through `log`.
  public func restartExited(log: (String) -> Void) {
    for (index, process) in processes.enumerated() where !process.isRunning {
      guard restarts < restartLimit else { return }
      restarts += 1
      log("local worker \(Self.name(index)) exited (status \(process.terminationStatus)): starting it again")
      if let replacement = try? start(index) { processes[index] = replacement }
    }
  }

  /// Waits up to `grace` seconds for the workers to leave (they do when told the
  /// experiment is finished), then stops those that have not (they never got the message).
  public func stop(grace: TimeInterval) {
    let deadline = Date().addingTimeInterval(grace)
    while processes.contains(where: \.isRunning) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    for process in processes where process.isRunning { process.terminate() }
  }
}
