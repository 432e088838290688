import Data
import Files
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import Wire
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

  /// Coordinators get a free status port (the default, 8750, may be taken).
  func start(_ arguments: [String]) throws -> (Process, Pipe) {
    try startQuorum(arguments + (arguments.first == "coordinator" && !arguments.contains("--status") ? ["--status", "127.0.0.1:0"] : []))
  }
  func run(_ arguments: [String]) throws -> (status: Int32, output: String) { try runQuorum(arguments) }

  /// A small experiment: FMNIST-LT-100, width 0.35, 1 epoch, 2 folds × 2 variants.
  func experiment(_ name: String, extra: String = "") throws -> String {
    let path = folder + "/\(name).yaml"
    try FileBytes.writeAtomically(Array("""
      name: \(name)
      run_directory: \(folder)/runs/\(name)
      \(extra)
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

  /// The whole path: members and their refits on all data, every ensemble method, a
  /// Noisy Student round, a student distilled from the submitted ensemble (on the
  /// unlabelled test images too) and its teacher-less twin, the outputs, `quorum predict`
  /// of the ensemble and of the student, and a resume that trains nothing.
  func testRunTrainsEveryTaskPrintsScoresAndResumes() throws {
    let file = try experiment("clean", extra: """
      distill: {unlabelled: true, training: {width: 0.35, epochs: 1}}
      noisy_student: {rounds: 1, confidence: 0.5, training: {dropout: 0.5}}
      refit: true
      """)
    let first = try run(["run", file, "--workers", "2", "--threads", "1"])
    XCTAssertEqual(first.status, 0, first.output)
    XCTAssert(first.output.contains("4 tasks (2 variants × 2 folds) + 2 refit on all data + 4 later (Noisy Student rounds, students)"), first.output)
    XCTAssert(first.output.contains("pseudo-labelling the test images") && first.output.contains("building the ensemble that teaches the student"), first.output)
    XCTAssert(first.output.contains("| noisy-1 | 0."), "the Noisy Student round joins the library:\n\(first.output)")
    XCTAssert(first.output.contains("Noisy Student round 1: ") && first.output.contains("confident images per class: 0 "), first.output)
    for student in ["| student (distilled from the submitted ensemble) | 0.", "| student-alone (the same student on the labels alone) | 0."] {
      XCTAssert(first.output.contains(student), "\(student) missing:\n\(first.output)")
    }
    for file in [
      "logits/student/all.test.npy", "checkpoints/student/all.safetensors", "logits/student-alone/all.test.npy", "logits/seed-1/all.test.npy",
      "checkpoints/seed-0/all.safetensors", "ensemble/mlp-stacker.json",
    ] {
      XCTAssert(FileManager.default.fileExists(atPath: "\(folder)/runs/clean/\(file)"), file)
    }
    XCTAssert(first.output.contains("| seed-0 |") && first.output.contains("| soft vote"), first.output)
    for method in [
      "best member", "hard vote", "Caruana selection", "NLL-optimal weights", "stacking (logistic regression", "stacking (MLP, 32 hidden",
      "soft vote + temperature", "soft vote + prior correction", "refit on all data (2 of 3 members) (submitted)",
    ] {
      XCTAssert(first.output.contains(method), "\(method) missing:\n\(first.output)")
    }
    // The outputs: scores of every method, the weights, a submission row per test image.
    let runFolder = "\(folder)/runs/clean"
    let scores = String(decoding: try FileBytes.read(runFolder + "/scores.csv"), as: UTF8.self).split(separator: "\n")
    XCTAssertEqual(
      scores.count, 1 + 9 + 1 + 3,
      "a header, 9 methods, the chosen one on refit members, 3 members (2 seeds, 1 Noisy Student round):\n" + scores.joined(separator: "\n"))
    XCTAssert(scores.last?.hasPrefix("member noisy-1,") == true, scores.joined(separator: "\n"))
    // The best ensemble beats the best single member on the (balanced) test set.
    func fields(_ line: Substring) -> [String] {  // CSV: method names with commas are quoted
      var (fields, field, quoted) = ([String](), "", false)
      for character in line {
        if character == "\"" { quoted.toggle() } else if character == "," && !quoted { fields.append(field); field = "" } else { field.append(character) }
      }
      return fields + [field]
    }
    let testBalanced = scores.dropFirst().map(fields).map { (name: $0[0], value: Double($0[7]) ?? 0) }
    let bestMember = try XCTUnwrap(testBalanced.first { $0.name.hasPrefix("best member") }).value
    let bestEnsemble = testBalanced.filter { !$0.name.hasPrefix("best member") && !$0.name.hasPrefix("member ") }.map(\.value).max() ?? 0
    XCTAssertGreaterThan(bestEnsemble, bestMember, scores.joined(separator: "\n"))
    XCTAssert(scores[0].hasPrefix("method,oof_accuracy,oof_balanced_accuracy"))
    let submission = String(decoding: try FileBytes.read(runFolder + "/submission.csv"), as: UTF8.self).split(separator: "\n")
    XCTAssertEqual(submission.first, "id,label")
    XCTAssertEqual(submission.count, 1 + 10_000, "a row per Fashion-MNIST test image")
    let weights = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try FileBytes.read(runFolder + "/ensemble/weights.json"))) as? [String: Any])
    XCTAssertEqual(weights["members"] as? [String], ["seed-0", "seed-1", "noisy-1"])
    XCTAssert(FileManager.default.fileExists(atPath: runFolder + "/ensemble/stacker.json"))
    let report = String(decoding: try FileBytes.read(runFolder + "/report.html"), as: UTF8.self)
    XCTAssertEqual(report.components(separatedBy: "alt='Grad-CAM of example").count - 1, 12, "a heat map beside each confident mistake")
    let submitted = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try FileBytes.read(runFolder + "/ensemble/submitted.json"))) as? [String: Any])
    XCTAssertEqual(submitted["refit"] as? [String], ["seed-0", "seed-1"])
    // quorum predict runs the submitted ensemble from its checkpoints (the seeds' refit
    // models, the Noisy Student round's fold models): on the same test images it
    // reproduces the submission, row for row.
    let predicted = try run(["predict", runFolder, fashionMNISTFolder, "--output", folder + "/predicted.csv", "--threads", "1"])
    XCTAssertEqual(predicted.status, 0, predicted.output)
    XCTAssert(predicted.output.contains("on 10000 labelled examples"), predicted.output)
    XCTAssertEqual(String(decoding: try FileBytes.read(folder + "/predicted.csv"), as: UTF8.self).split(separator: "\n"), submission)
    // And the distilled student alone: the test score the run printed for it.
    let student = try run(["predict", runFolder, fashionMNISTFolder, "--student", "--output", folder + "/student.csv", "--threads", "1"])
    XCTAssertEqual(student.status, 0, student.output)
    let printed = try XCTUnwrap(first.output.split(separator: "\n").first { $0.hasPrefix("| student (distilled") })
    let studentAccuracy = try XCTUnwrap(student.output.firstMatch(of: #/balanced accuracy (0\.\d{4})/#)?.1)
    XCTAssert(printed.contains("| \(studentAccuracy) |"), "predict --student: \(student.output); run: \(printed)")
    XCTAssertEqual(try storedEvents("clean").count, 10)
    XCTAssertEqual(try NumPy.read("\(folder)/runs/clean/folds.npy").shape, [14_886])
    // Running it again resumes from the journal: nothing is trained twice.
    let again = try run(["run", file, "--workers", "1", "--threads", "1"])
    XCTAssertEqual(again.status, 0, again.output)
    XCTAssert(again.output.contains("10 of 10 tasks already stored"), again.output)
    XCTAssertEqual(try storedEvents("clean").count, 10)
  }

  /// A small search experiment: FMNIST-LT-100, width 0.35, 2 folds, scored by accuracy,
  /// with this `search:` section (indented by two spaces).
  func searchExperiment(_ name: String, search: String) throws -> String {
    let path = folder + "/\(name).yaml"
    try FileBytes.writeAtomically(Array("""
      name: \(name)
      run_directory: \(folder)/runs/\(name)
      metric: accuracy
      data: {train: \(fashionMNISTFolder), long_tail_ratio: 100}
      folds: {k: 2, seed: 0}
      training: {width: 0.35, epochs: 1, batch_size: 64}
      search:
      \(search)
      """.utf8), to: path)
    return path
  }

  /// A search over real processes: four random trials in two batches, each trained on both
  /// folds (a task each) and scored by its mean there, without test logits; the best
  /// becomes the member best-1, trained on both folds and ensembled; search.csv and search.json say which and why; `quorum search
  /// show` prints the trials best first; a second run trains nothing and chooses the same.
  func testASearchChoosesItsBestTrialAsTheMember() throws {
    let path = try searchExperiment("searched", search: """
        sampler: random
        trials: 4
        schedule: batches
        parallel: 2
        folds: 2
        best: 1
        seed: 3
        space:
          learning_rate: {log_uniform: [0.0001, 0.3]}
          label_smoothing: {choice: [0, 0.1]}
      """)
    let first = try run(["run", path, "--workers", "2", "--threads", "1"])
    XCTAssertEqual(first.status, 0, first.output)
    XCTAssert(first.output.contains("a search of 4 trials (random, 2 batches of up to 2, on folds 0, 1)"), first.output)
    XCTAssert(first.output.contains("search: batch 2 of 2: 2 trials"), first.output)
    let runFolder = "\(folder)/runs/searched"
    let table = String(decoding: try FileBytes.read(runFolder + "/search.csv"), as: UTF8.self).split(separator: "\n").map(String.init)
    XCTAssertEqual(table.first, "trial,learning_rate,label_smoothing,accuracy,status,member")
    XCTAssertEqual(table.count, 5, "\(table)")
    let scores = table.dropFirst().map { Double($0.split(separator: ",")[3])! }
    let best = scores.indices.max { (scores[$0], -$0) < (scores[$1], -$1) }!
    // Each trial's score is the mean of its two folds' validation accuracies (one epoch: the
    // last is the one kept), as the workers reported them.
    let reports = String(decoding: try FileBytes.read(runFolder + "/progress.jsonl"), as: UTF8.self).split(separator: "\n")
      .compactMap { try? JSONDecoder().decode(ProgressReport.self, from: Data($0.utf8)) }
    for trial in 0..<4 {
      let folds = (0..<2).compactMap { fold in reports.last { $0.task == "trial-\(trial)/fold\(fold)" }?.validationMetric }
      XCTAssertEqual(folds.count, 2, "trial \(trial) reported on both folds")
      XCTAssertEqual(scores[trial], folds.reduce(0, +) / 2, accuracy: 1e-5, "trial \(trial): \(folds)")
    }
    XCTAssert(table[best + 1].hasSuffix(",scored,best-1"), "the best trial is the member: \(table)")
    let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try FileBytes.read(runFolder + "/search.json"))) as? [String: Any])
    let chosen = try XCTUnwrap((results["chosen"] as? [[String: Any]])?.first)
    XCTAssertEqual(chosen["trial"] as? Int, best)
    XCTAssertEqual(chosen["member"] as? String, "best-1")
    for trial in 0..<4 {
      for fold in 0..<2 {
        XCTAssert(FileManager.default.fileExists(atPath: "\(runFolder)/logits/trial-\(trial)/fold\(fold).oof.npy"), "trial \(trial) fold \(fold)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(runFolder)/logits/trial-\(trial)/fold\(fold).test.npy"), "a trial makes no test logits")
      }
    }
    for fold in 0..<2 { XCTAssert(FileManager.default.fileExists(atPath: "\(runFolder)/logits/best-1/fold\(fold).test.npy"), "member fold \(fold)") }
    XCTAssert(first.output.contains("| best-1 | 0."), "the member is ensembled:\n\(first.output)")
    XCTAssert(first.output.contains("search: best-1 is trial \(best) (accuracy "), first.output)

    let shown = try run(["search", "show", runFolder])
    XCTAssertEqual(shown.status, 0, shown.output)
    let rows = shown.output.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| trial") && !$0.hasPrefix("| ---") }
    XCTAssert(rows.first?.hasPrefix("| \(best) |") == true && rows.first?.contains("best-1") == true, shown.output)

    let again = try run(["run", path, "--workers", "1", "--threads", "1"])
    XCTAssertEqual(again.status, 0, again.output)
    XCTAssert(again.output.contains("already stored"), again.output)
    XCTAssertEqual(try storedEvents("searched").count, 10, "4 trials × 2 folds and 2 member folds, each stored once")
    let resumed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try FileBytes.read(runFolder + "/search.json"))) as? [String: Any])
    XCTAssertEqual((resumed["chosen"] as? [[String: Any]])?.first?["trial"] as? Int, best)
  }

  /// Successive halving over real processes: three workers, a grid of twelve trials, the
  /// last three hopeless by their learning rate. They are stopped at the first rung (epoch 1
  /// of 3), the best trial is not, no stopped trial becomes the member, and fewer epochs are
  /// trained than the grid's 36.
  func testSuccessiveHalvingStopsHopelessTrialsAtTheFirstRung() throws {
    let path = try searchExperiment("halved", search: """
        sampler: grid
        parallel: 12
        epochs: 3
        halving: {min_epochs: 1, reduction: 3}
        space:
          learning_rate: {choice: [0.05, 0.1, 0.02, 0.0000001]}
          seed: {integer: [0, 2]}
      """)
    let result = try run(["run", path, "--workers", "3", "--threads", "1"])
    XCTAssertEqual(result.status, 0, result.output)
    let runFolder = "\(folder)/runs/halved"
    let rows = String(decoding: try FileBytes.read(runFolder + "/search.csv"), as: UTF8.self).split(separator: "\n").dropFirst()
      .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    XCTAssertEqual(rows.count, 12)
    for hopeless in 9..<12 { XCTAssertEqual(rows[hopeless][4], "stopped at epoch 1", "trial \(hopeless): \(rows[hopeless])") }
    let member = try XCTUnwrap(rows.first { $0[5] == "best-1" })
    XCTAssertEqual(member[4], "scored", "the member ran all its epochs: \(member)")
    let best = rows.filter { $0[4] == "scored" }.map { Double($0[3])! }.max()!
    XCTAssertEqual(Double(member[3])!, best)
    // Every trial epoch reported once: the stopped trials trained one epoch each.
    let progress = String(decoding: try FileBytes.read(runFolder + "/progress.jsonl"), as: UTF8.self).split(separator: "\n")
    let trialEpochs = progress.filter { $0.contains("\"task\":\"trial-") }.count
    let stopped = rows.filter { $0[4].hasPrefix("stopped") }.count
    XCTAssertEqual(trialEpochs, 3 * (12 - stopped) + stopped, "\(stopped) stopped trials")
    XCTAssertLessThanOrEqual(trialEpochs, 30)
    XCTAssert(result.output.contains("the coordinator stops trial-9/fold0"), result.output)
    // The report's search section: every trial, the stopped ones marked, the epoch plot.
    let report = String(decoding: try FileBytes.read(runFolder + "/report.html"), as: UTF8.self)
    XCTAssert(report.contains("<h2>Search</h2>") && report.contains("Validation accuracy by epoch"), "no search section")
    XCTAssertEqual(report.components(separatedBy: "<td>stopped at epoch 1</td>").count - 1, stopped)
    // Every decision rests on a journalled rung report (one per trial at epoch 1), so a new
    // process rebuilding the report from the run directory replays the same stops.
    let journal = String(decoding: try FileBytes.read(runFolder + "/journal.jsonl"), as: UTF8.self)
    XCTAssertEqual(journal.components(separatedBy: "\"kind\":\"reported\"").count - 1, 12)
    try FileManager.default.removeItem(atPath: runFolder + "/progress.jsonl")
    let rebuilt = try run(["report", runFolder])
    XCTAssertEqual(rebuilt.status, 0, rebuilt.output)
    let again = String(decoding: try FileBytes.read(runFolder + "/report.html"), as: UTF8.self)
    XCTAssertEqual(again.components(separatedBy: "<td>stopped at epoch 1</td>").count - 1, stopped, "the stops, from the journal alone")
  }

  /// An asynchronous TPE search through a worker killed holding a trial and a coordinator
  /// killed after two trials are stored: every trial proposed once (the restarted
  /// coordinator keeps the proposals its journal has, settings and all), every task stored
  /// once, the killed worker's trial redone, and the member chosen from all six trials.
  func testASearchSurvivesAKilledWorkerAndAKilledCoordinator() throws {
    let path = try searchExperiment("survived", search: """
        sampler: tpe
        trials: 6
        parallel: 2
        seed: 1
        space:
          learning_rate: {log_uniform: [0.01, 0.3]}
          label_smoothing: {uniform: [0, 0.2]}
      """)
    let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<60_000))"
    let (first, _) = try start(["coordinator", path, "--bind", endpoint])
    let (doomed, _) = try start(["worker", "--connect", endpoint, "--name", "doomed", "--threads", "1"])
    waitForJournal("survived", containing: "\"worker\":\"doomed\"")
    let (steady, _) = try start(["worker", "--connect", endpoint, "--name", "steady", "--threads", "1"])
    kill(doomed.processIdentifier, SIGKILL)
    doomed.waitUntilExit()
    waitForJournal("survived", containing: "\"stored\"", count: 2)
    kill(first.processIdentifier, SIGKILL)
    first.waitUntilExit()
    let journal = "\(folder)/runs/survived/journal.jsonl"
    func proposals() throws -> [String] {
      String(decoding: try FileBytes.read(journal), as: UTF8.self).split(separator: "\n").filter { $0.contains("\"proposed\"") }.map(String.init)
    }
    let before = try proposals()
    XCTAssertGreaterThanOrEqual(before.count, 2)
    XCTAssertLessThan(before.count, 6, "the coordinator died mid-search")

    let (second, output) = try start(["coordinator", path, "--bind", endpoint])
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    second.waitUntilExit()
    steady.waitUntilExit()
    XCTAssertEqual(second.terminationStatus, 0, text)
    XCTAssert(text.contains("resuming from"), text)
    let after = try proposals()
    XCTAssertEqual(after.count, 6, "six trials, each proposed once: \(after)")
    XCTAssertEqual(Array(after.prefix(before.count)), before, "the proposals made before the restart are kept as they were")
    let events = String(decoding: try FileBytes.read(journal), as: UTF8.self)
    XCTAssert(events.contains("\"expired\""), "the killed worker's lease expired")
    let stored = try storedEvents("survived").map { line -> String in
      let task = line.components(separatedBy: "\"task\":\"")[1]
      return String(task.prefix { $0 != "\"" }).replacingOccurrences(of: "\\/", with: "/")
    }
    XCTAssertEqual(stored.sorted(), ((0..<6).map { "trial-\($0)/fold0" } + ["best-1/fold0", "best-1/fold1"]).sorted(), "each task stored once")
    let rows = String(decoding: try FileBytes.read("\(folder)/runs/survived/search.csv"), as: UTF8.self).split(separator: "\n").dropFirst()
    XCTAssertEqual(rows.count, 6)
    XCTAssert(rows.allSatisfy { $0.contains(",scored") }, "\(rows)")
  }

  /// A worker that cannot read the experiment's data (the folder renamed away once the
  /// coordinator has loaded it) trains on the data set the coordinator serves: one fetch
  /// for all its tasks, the same logits as workers that read the files, and a cached copy
  /// that a second run reuses; a damaged cached copy is noticed and fetched again.
  func testAWorkerWithoutTheDataFilesTrainsOnTheDataSetTheCoordinatorServes() throws {
    let data = folder + "/fmnist"
    try FileManager.default.copyItem(atPath: fashionMNISTFolder, toPath: data)
    func experiment(_ name: String, seeds: String) throws -> String {
      let path = folder + "/\(name).yaml"
      try FileBytes.writeAtomically(Array("""
        name: \(name)
        run_directory: \(folder)/runs/\(name)
        data: {train: \(data), long_tail_ratio: 100}
        folds: {k: 2, seed: 0}
        training: {width: 0.35, epochs: 1, batch_size: 64}
        grid: {seed: [\(seeds)]}
        """.utf8), to: path)
      return path
    }
    // Served data and data read from the paths give the same bits.
    XCTAssertEqual(try run(["run", try experiment("paths", seeds: "0, 1"), "--workers", "1", "--threads", "1"]).status, 0)
    let cache = folder + "/worker-cache"
    func servedRun(_ name: String, seeds: String) throws -> (coordinator: String, worker: String) {
      let file = try experiment(name, seeds: seeds)
      let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<60_000))"
      let (coordinator, coordinatorOutput) = try start(["coordinator", file, "--bind", endpoint])
      // Once the coordinator has made the data set it serves, the files go away.
      let bundles = "\(folder)/runs/\(name)/data"
      let deadline = Date().addingTimeInterval(60)
      while Date() < deadline, ((try? FileManager.default.contentsOfDirectory(atPath: bundles)) ?? []).filter({ $0.hasSuffix(".qdata") }).isEmpty {
        Thread.sleep(forTimeInterval: 0.05)
      }
      try FileManager.default.moveItem(atPath: data, toPath: data + "-away")
      defer { try? FileManager.default.moveItem(atPath: data + "-away", toPath: data) }
      let (worker, workerOutput) = try start(["worker", "--connect", endpoint, "--name", "remote", "--threads", "1", "--cache", cache])
      let coordinatorText = String(decoding: coordinatorOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      coordinator.waitUntilExit()
      let workerText = String(decoding: workerOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      worker.waitUntilExit()
      XCTAssertEqual(coordinator.terminationStatus, 0, coordinatorText + workerText)
      XCTAssert(coordinatorText.contains("serving the data set"), coordinatorText)
      return (coordinatorText, workerText)
    }
    let first = try servedRun("served", seeds: "0, 1")
    XCTAssertEqual(first.worker.components(separatedBy: "fetching the data set").count - 1, 1, "one fetch for four tasks:\n\(first.worker)")
    XCTAssertEqual(try storedEvents("served").count, 4)
    XCTAssertEqual(try logits("served"), try logits("paths"), "the served data set trains the same bits as the files")
    let cached = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache + "/data").first { $0.hasSuffix(".qdata") })

    // A second experiment on the same data: the cached copy serves, nothing is fetched.
    let second = try servedRun("again", seeds: "0")
    XCTAssertFalse(second.worker.contains("fetching the data set"), second.worker)
    XCTAssertEqual(try storedEvents("again").count, 2)

    // A damaged cached copy (one byte changed) is fetched again.
    let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: cache + "/data/" + cached))
    handle.seek(toFileOffset: 1000)
    let byte = handle.readData(ofLength: 1)
    handle.seek(toFileOffset: 1000)
    handle.write(Data([byte[0] ^ 0xFF]))
    handle.closeFile()
    let third = try servedRun("repaired", seeds: "1")
    XCTAssert(third.worker.contains("does not hash to") && third.worker.contains("fetching the data set"), third.worker)
    XCTAssertEqual(try storedEvents("repaired").count, 2)
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

  /// A task that kills every worker process that starts it: `quorum run` starts its local
  /// worker again each time, the task stops at the retry limit, every other task is stored
  /// with its checkpoint, and the run ends with status 1 naming the failed task.
  func testATaskThatAlwaysCrashesItsWorkerStopsAtTheRetryLimit() throws {
    let file = try experiment("poison")
    let result = try runQuorum(["run", file, "--workers", "1", "--threads", "1"], environment: ["QUORUM_FAULT_CRASH_TASK": "seed-1/fold0"])
    XCTAssertEqual(result.status, 1, result.output)
    XCTAssert(result.output.contains("1 task failed") && result.output.contains("seed-1/fold0: 3 attempts"), result.output)
    XCTAssert(result.output.contains("| seed-0 |") && result.output.contains("| seed-1 | incomplete"), result.output)
    let stored = try storedEvents("poison")
    XCTAssertEqual(stored.count, 3, "the three other tasks")
    XCTAssertFalse(stored.contains { $0.contains("seed-1/fold0") })
    let journal = String(decoding: try FileBytes.read("\(folder)/runs/poison/journal.jsonl"), as: UTF8.self)
    XCTAssert(journal.contains("\"kind\":\"failed\"") && journal.contains("\"attempt\":3"), journal)
    for task in ["seed-0/fold0", "seed-0/fold1", "seed-1/fold1"] {
      XCTAssert(FileManager.default.fileExists(atPath: "\(folder)/runs/poison/checkpoints/\(task).safetensors"), task)
    }
  }

  /// The status endpoint of a running coordinator, read by `quorum status` as JSON, as a
  /// table and as Prometheus metrics; then the results: float16 logits (the experiment
  /// allows them) and checkpoints that load into a MobileNetV2.
  func testStatusEndpointFloat16LogitsAndCheckpoints() throws {
    let file = try experiment("watched", extra: "logits_precision: float16\nmetric: quadratic_kappa")
    let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<45_000))"
    let status = "127.0.0.1:\(Int.random(in: 45_000..<60_000))"
    let (coordinator, coordinatorOutput) = try start(["coordinator", file, "--bind", endpoint, "--status", status])
    // Up before any worker: every task pending.
    var before = (status: Int32(1), output: "")
    let deadline = Date().addingTimeInterval(30)
    while before.status != 0 && Date() < deadline {
      Thread.sleep(forTimeInterval: 0.2)
      before = try run(["status", "http://\(status)", "--json"])
    }
    XCTAssertEqual(before.status, 0, before.output)
    let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(before.output.utf8)) as? [String: Any])
    let tasks = try XCTUnwrap(json["tasks"] as? [String: Any])
    XCTAssertEqual(tasks["total"] as? Int, 4)
    XCTAssertEqual(tasks["pending"] as? Int, 4)
    XCTAssertEqual(json["experiment"] as? String, "watched")

    let (worker, _) = try start(["worker", "--connect", endpoint, "--name", "watched-worker", "--threads", "1"])
    waitForJournal("watched", containing: "\"stored\"")
    let table = try run(["status", "http://\(status)"])
    XCTAssertEqual(table.status, 0, table.output)
    XCTAssert(table.output.contains("watched-worker") && table.output.contains("of 4"), table.output)
    // Snapshots are published four times a second: the stored result shows within one.
    func storedInMetrics(_ text: String) -> Int {
      let line = text.split(separator: "\n").first { $0.hasPrefix("quorum_tasks{state=\"stored\"}") }
      return Int(line?.split(separator: " ").last ?? "") ?? -1
    }
    var metrics = try run(["status", "http://\(status)", "--metrics"])
    for _ in 0..<20 where storedInMetrics(metrics.output) < 1 {
      Thread.sleep(forTimeInterval: 0.1)
      metrics = try run(["status", "http://\(status)", "--metrics"])
    }
    XCTAssert(metrics.output.contains("# TYPE quorum_tasks gauge"), metrics.output)
    XCTAssert(metrics.output.contains("quorum_tasks_total 4"), metrics.output)
    XCTAssertGreaterThanOrEqual(storedInMetrics(metrics.output), 1, metrics.output)
    XCTAssert(metrics.output.contains("quorum_results_stored_total"), metrics.output)

    let output = String(decoding: coordinatorOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    coordinator.waitUntilExit()
    worker.waitUntilExit()
    XCTAssertEqual(coordinator.terminationStatus, 0, output)
    let gone = try run(["status", "http://\(status)"])
    XCTAssertEqual(gone.status, 1, "a coordinator that is gone: exit status 1")
    XCTAssert(gone.output.contains(status), gone.output)

    // float16 on the wire: every stored logit is a float16 value.
    for (name, values) in try logits("watched") {
      XCTAssert(values.allSatisfy { Float(Float16($0)) == $0 }, "\(name) holds values that float16 cannot")
    }
    // The checkpoints load into the model they describe, and the folds' models differ.
    var firstWeights: [[Float]] = []
    for task in ["seed-0/fold0", "seed-0/fold1"] {
      let path = "\(folder)/runs/watched/checkpoints/\(task).safetensors"
      let description = try ModelCheckpoint.description(of: path)
      XCTAssertEqual(description.configuration.width, 0.35)
      let model = try MobileNetV2(description.configuration, capacity: 1, backend: CPUBackend(threads: 1), inferenceOnly: true)
      try ModelCheckpoint.load(path, into: model)
      firstWeights.append(model.parameters[0].value.array(count: 64))
    }
    XCTAssertNotEqual(firstWeights[0], firstWeights[1])

    // metric: quadratic_kappa submits the method best by kappa out of fold, and names it.
    XCTAssert(output.contains("quadratic_kappa picks the submission") && output.contains("| method | OOF quadratic_kappa |"), output)
    let rows = String(decoding: try FileBytes.read("\(folder)/runs/watched/scores.csv"), as: UTF8.self).split(separator: "\n")
    XCTAssert(rows[0].hasSuffix(",oof_quadratic_kappa,test_quadratic_kappa"), String(rows[0]))
    let methods = rows.dropFirst().filter { !$0.hasPrefix("member ") }.map { line -> (name: String, kappa: Double) in
      let name = line.hasPrefix("\"") ? String(line.dropFirst().prefix { $0 != "\"" }) : String(line.prefix { $0 != "," })
      return (name, Double(line.split(separator: ",", omittingEmptySubsequences: false).dropLast().last ?? "") ?? .nan)
    }
    let best = try XCTUnwrap(methods.max { $0.kappa < $1.kappa })
    XCTAssert(methods.allSatisfy { $0.kappa.isFinite }, rows.joined(separator: "\n"))
    let weights = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try FileBytes.read("\(folder)/runs/watched/ensemble/weights.json"))) as? [String: Any])
    XCTAssertEqual(weights["objective"] as? String, "quadratic_kappa")
    let submitted = try XCTUnwrap(weights["submitted"] as? String)
    XCTAssertEqual(methods.first { $0.name == submitted }?.kappa, best.kappa, "submitted \(submitted):\n" + rows.joined(separator: "\n"))
  }

  /// `quorum doctor` against a live CURVE coordinator: an admitted key passes the real
  /// handshake and the clock check; a key not on the allow-list fails, naming the fix; on
  /// a machine without an NVIDIA driver the GPU check fails clearly (exit status 1).
  func testDoctorChecksTheHandshakeTheClockAndTheGPU() throws {
    let keys = folder + "/keys"
    for name in ["coordinator", "good", "stranger"] { XCTAssertEqual(try run(["keys", "generate", name, "--dir", keys]).status, 0) }
    try FileManager.default.createDirectory(atPath: keys + "/workers", withIntermediateDirectories: true)
    try FileManager.default.copyItem(atPath: keys + "/good.pub", toPath: keys + "/workers/good.pub")
    let file = try experiment("doctor")
    let endpoint = "tcp://127.0.0.1:\(Int.random(in: 30_000..<45_000))"
    let status = "127.0.0.1:\(Int.random(in: 45_000..<60_000))"
    let (coordinator, _) = try start(["coordinator", file, "--bind", endpoint, "--status", status, "--key", keys + "/coordinator.key", "--allow", keys + "/workers"])
    defer { coordinator.terminate() }
    let deadline = Date().addingTimeInterval(30)
    while try run(["status", "http://\(status)"]).status != 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }

    let ready = try run(["doctor", "--device", "cpu", "--connect", endpoint, "--key", keys + "/good.key", "--server-key", keys + "/coordinator.pub", "--status", "http://\(status)"])
    XCTAssertEqual(ready.status, 0, ready.output)
    XCTAssert(ready.output.contains("admits this worker (CURVE handshake"), ready.output)
    XCTAssert(ready.output.contains("against the coordinator") && ready.output.contains("doctor: ready"), ready.output)

    let refused = try run(["doctor", "--device", "cpu", "--connect", endpoint, "--key", keys + "/stranger.key", "--server-key", keys + "/coordinator.pub"])
    XCTAssertEqual(refused.status, 1, refused.output)
    XCTAssert(refused.output.contains("refused this worker's key") && refused.output.contains("1 check failed"), refused.output)

    let gpu = try run(["doctor"])
    if dlopen("libcuda.so.1", RTLD_NOW) == nil {
      XCTAssertEqual(gpu.status, 1, gpu.output)
      XCTAssert(gpu.output.contains("GPU") && gpu.output.contains("none usable: the CUDA driver not found (tried libcuda.so.1") && gpu.output.contains("--device cpu"), gpu.output)
      // A worker asked for a GPU refuses with the same reason, before connecting.
      let worker = try run(["worker", "--connect", "tcp://127.0.0.1:1", "--device", "cuda:0"])
      XCTAssertEqual(worker.status, 64, worker.output)
      XCTAssert(worker.output.contains("--device cuda:0: the CUDA driver not found") && worker.output.contains("use --device cpu or auto"), worker.output)
    }
  }

  /// NVRTC and cuBLASLt are checked without a driver (what a container image brings of
  /// CUDA): a folder that lacks them is named, with the library and the fix; NVRTC on
  /// LD_LIBRARY_PATH (where scripts/test.sh puts CI's pip NVRTC) gets the check past it to
  /// cuBLASLt.
  func testDoctorNamesTheMissingCUDALibrariesWithoutAGPU() throws {
    // The dynamic linker's own cache: what no folder of ours can hide.
    let ldconfig = Process()
    ldconfig.executableURL = URL(fileURLWithPath: "/sbin/ldconfig")
    ldconfig.arguments = ["-p"]
    let pipe = Pipe()
    ldconfig.standardOutput = pipe
    try ldconfig.run()
    let cache = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    ldconfig.waitUntilExit()
    try XCTSkipIf(cache.contains("libnvrtc.so") || cache.contains("libcublasLt.so"), "the system paths have NVRTC or cuBLASLt: no folder can hide them")
    let empty = folder + "/cuda"
    try FileManager.default.createDirectory(atPath: empty + "/lib64", withIntermediateDirectories: true)
    // Only the given folder: no virtual environment, no user site-packages.
    let bare = ["CUDA_HOME": empty, "LD_LIBRARY_PATH": "", "HOME": folder, "VIRTUAL_ENV": folder + "/none"]
    let none = try runQuorum(["doctor"], environment: bare)
    XCTAssertEqual(none.status, 1, none.output)
    let line = try XCTUnwrap(none.output.split(separator: "\n").first { $0.contains("CUDA libs") }, none.output)
    XCTAssert(line.hasPrefix("FAILED"), String(line))
    XCTAssert(line.contains("NVRTC not found (tried libnvrtc.so.13, libnvrtc.so.12, libnvrtc.so in \(empty)/lib64"), String(line))
    XCTAssert(line.contains("pip install nvidia-cuda-nvrtc"), String(line))

    let searchPath = (ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
    guard let nvrtcFolder = searchPath.first(where: { FileManager.default.fileExists(atPath: $0 + "/libnvrtc.so.13") }) else { return }
    var withNVRTC = bare
    withNVRTC["LD_LIBRARY_PATH"] = nvrtcFolder
    let some = try runQuorum(["doctor"], environment: withNVRTC)
    let next = try XCTUnwrap(some.output.split(separator: "\n").first { $0.contains("CUDA libs") }, some.output)
    XCTAssert(next.hasPrefix("FAILED") && next.contains("cuBLASLt not found (tried libcublasLt.so.13"), String(next))
    XCTAssert(next.contains("pip install nvidia-cublas"), String(next))
  }
}
