import Data
import Foundation
import QuorumTestSupport
import XCTest

/// `quorum run`, `quorum coordinator` and `quorum worker` as real processes over real
/// sockets on loopback.
final class ClusterCommandTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws {
    folder = try temporaryFolder()
    guard FileManager.default.fileExists(atPath: fashionMNISTFolder + "/train-images-idx3-ubyte.gz") else {
      throw XCTSkip("Fashion-MNIST is missing at \(fashionMNISTFolder): run scripts/setup.sh (CI does)")
    }
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func start(_ arguments: [String]) throws -> (Process, Pipe) { try startQuorum(arguments) }
  func run(_ arguments: [String]) throws -> (status: Int32, output: String) { try runQuorum(arguments) }

  /// A small experiment: FMNIST-LT-100, width 0.35, 1 epoch, 2 folds × 2 variants.
  func experiment(_ name: String) throws -> String {
    let path = folder + "/\(name).yaml"
    try FileBytes.writeAtomically(Array("""
      name: \(name)
      run_directory: \(folder)/runs/\(name)
      data: {train: \(fashionMNISTFolder), long_tail_ratio: 100}
      folds: {k: 2, seed: 0}
      training: {width: 0.35, epochs: 1, batch_size: 64}
      grid: {seed: [0, 1]}
      """.utf8), to: path)
    return path
  }

  func logits(_ name: String) throws -> [String: [Float]] {
    var all: [String: [Float]] = [:]
    for variant in ["seed-0", "seed-1"] {
      for file in ["fold0.oof", "fold1.oof", "fold0.test", "fold1.test"] {
        all["\(variant)/\(file)"] = try NumPy.readFloat32("\(folder)/runs/\(name)/logits/\(variant)/\(file).npy").values
      }
    }
    return all
  }

  func storedEvents(_ name: String) throws -> [String] {
    let text = String(decoding: try FileBytes.read("\(folder)/runs/\(name)/journal.jsonl"), as: UTF8.self)
    return text.split(separator: "\n").filter { $0.contains("\"stored\"") }.map(String.init)
  }

  func testRunTrainsEveryTaskPrintsScoresAndResumes() throws {
    let file = try experiment("clean")
    let first = try run(["run", file, "--workers", "2", "--threads", "1"])
    XCTAssertEqual(first.status, 0, first.output)
    XCTAssert(first.output.contains("| seed-0 |") && first.output.contains("plain average of 2"), first.output)
    XCTAssertEqual(try storedEvents("clean").count, 4)
    XCTAssertEqual(try NumPy.read("\(folder)/runs/clean/folds.npy").shape, [14_886])
    // Running it again resumes from the journal: nothing is trained twice.
    let again = try run(["run", file, "--workers", "1", "--threads", "1"])
    XCTAssertEqual(again.status, 0, again.output)
    XCTAssert(again.output.contains("4 of 4 tasks already stored"), again.output)
    XCTAssertEqual(try storedEvents("clean").count, 4)
  }

  /// kill -9 of a worker mid-task: its lease expires, another worker takes the task, every
  /// task is stored once, and the logits are the bits of a fault-free run.
  func testAKilledWorkersTaskIsRedoneAndTheResultsMatchAFaultFreeRun() throws {
    let reference = try experiment("reference")
    XCTAssertEqual(try run(["run", reference, "--workers", "1", "--threads", "1"]).status, 0)

    let file = try experiment("faulty")
    let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<60_000))"
    let (coordinator, coordinatorOutput) = try start(["coordinator", file, "--bind", endpoint])
    let (doomed, _) = try start(["worker", "--connect", endpoint, "--name", "doomed", "--threads", "1"])
    // Kill it once it holds a lease.
    let journal = "\(folder)/runs/faulty/journal.jsonl"
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline, !(String(decoding: (try? FileBytes.read(journal)) ?? [], as: UTF8.self).contains("doomed")) {
      Thread.sleep(forTimeInterval: 0.05)
    }
    kill(doomed.processIdentifier, SIGKILL)
    doomed.waitUntilExit()
    let (survivor, _) = try start(["worker", "--connect", endpoint, "--name", "survivor", "--threads", "1"])
    let output = String(decoding: coordinatorOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    coordinator.waitUntilExit()
    survivor.waitUntilExit()
    XCTAssertEqual(coordinator.terminationStatus, 0, output)
    let stored = try storedEvents("faulty")
    XCTAssertEqual(stored.count, 4, "every task stored exactly once")
    XCTAssertEqual(Set(stored).count, 4)
    XCTAssert(String(decoding: try FileBytes.read(journal), as: UTF8.self).contains("\"expired\""), "the killed worker's lease expired")
    XCTAssertEqual(try logits("faulty"), try logits("reference"), "same bits as the fault-free run")
  }

  func waitForJournal(_ name: String, containing text: String, count: Int = 1, seconds: Double = 90) {
    let journal = "\(folder)/runs/\(name)/journal.jsonl"
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      let content = String(decoding: (try? FileBytes.read(journal)) ?? [], as: UTF8.self)
      if content.components(separatedBy: text).count - 1 >= count { return }
      Thread.sleep(forTimeInterval: 0.05)
    }
  }

  /// kill -9 of the coordinator after a result is stored, then a restart on the same file:
  /// the worker reconnects, stored tasks are not redone, every task is stored once, and the
  /// logits are those of a fault-free run.
  func testAKilledCoordinatorRestartsAndResumes() throws {
    let reference = try experiment("reference")
    XCTAssertEqual(try run(["run", reference, "--workers", "1", "--threads", "1"]).status, 0)
    let file = try experiment("restart")
    let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<60_000))"
    let (first, _) = try start(["coordinator", file, "--bind", endpoint])
    let (worker, _) = try start(["worker", "--connect", endpoint, "--name", "steady", "--threads", "1"])
    waitForJournal("restart", containing: "\"stored\"")
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    let storedBefore = try storedEvents("restart").count
    XCTAssertGreaterThanOrEqual(storedBefore, 1)
    let (second, output) = try start(["coordinator", file, "--bind", endpoint])
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    second.waitUntilExit()
    worker.waitUntilExit()
    XCTAssertEqual(second.terminationStatus, 0, text)
    XCTAssert(text.contains("resuming from"), text)
    let stored = try storedEvents("restart")
    XCTAssertEqual(stored.count, 4)
    XCTAssertEqual(Set(stored.map { $0.replacingOccurrences(of: "\"attempt\":2", with: "\"attempt\":1") }).count, 4, "each task once")
    XCTAssertEqual(try logits("restart"), try logits("reference"))
  }

  /// SIGSTOP of a worker holding a lease: the lease expires and another worker does the
  /// task; after SIGCONT the stopped worker's late result is discarded.
  func testAStoppedWorkersLateResultIsDiscarded() throws {
    let file = try experiment("stopped")
    let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<60_000))"
    let (coordinator, output) = try start(["coordinator", file, "--bind", endpoint])
    let (sleepy, _) = try start(["worker", "--connect", endpoint, "--name", "sleepy", "--threads", "1"])
    waitForJournal("stopped", containing: "\"sleepy\"")
    kill(sleepy.processIdentifier, SIGSTOP)
    let (steady, _) = try start(["worker", "--connect", endpoint, "--name", "steady", "--threads", "1"])
    waitForJournal("stopped", containing: "\"expired\"")
    kill(sleepy.processIdentifier, SIGCONT)
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    coordinator.waitUntilExit()
    steady.waitUntilExit()
    if sleepy.isRunning { sleepy.terminate() }
    XCTAssertEqual(coordinator.terminationStatus, 0, text)
    let stored = try storedEvents("stopped")
    XCTAssertEqual(stored.count, 4, "every task stored exactly once")
    XCTAssertFalse(stored.contains { $0.contains("\"sleepy\"") }, "nothing from the stopped worker's expired lease")
  }
}
