import Cluster
import Data
import Ensemble
import Experiment
import Files
import Foundation
import Pipeline
import QuorumTestSupport
import RunLayout
import Training
import Wire
import XCTest

/// The pipeline in process, on a tiny data set (3 classes of 28×28 images, 48 to train on,
/// 12 to test): every task role run by the task runner and held to its result contract,
/// the later phases' payloads computed from the stored logits, and the teacher computed
/// without writing a file.
final class PipelineTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws {
    folder = try temporaryFolder()
    try writeTinyDataSet(folder + "/data")
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  /// Images whose class shows as a bright band at a class-dependent row, plus noise.
  func writeTinyDataSet(_ data: String) throws {
    try Folders.create(data)
    var random = SystemRandomNumberGenerator()
    func images(_ labels: [UInt8]) -> [UInt8] {
      labels.flatMap { label -> [UInt8] in
        (0..<(28 * 28)).map { pixel in
          let row = pixel / 28
          return UInt8.random(in: 0...60, using: &random) &+ (row / 9 == Int(label) ? 180 : 0)
        }
      }
    }
    let train = (0..<48).map { UInt8($0 % 3) }
    let test = (0..<12).map { UInt8($0 % 3) }
    try FileBytes.writeAtomically(idxBytes(shape: [48, 28, 28], payload: images(train)), to: data + "/train-images-idx3-ubyte")
    try FileBytes.writeAtomically(idxBytes(shape: [48], payload: train), to: data + "/train-labels-idx1-ubyte")
    try FileBytes.writeAtomically(idxBytes(shape: [12, 28, 28], payload: images(test)), to: data + "/t10k-images-idx3-ubyte")
    try FileBytes.writeAtomically(idxBytes(shape: [12], payload: test), to: data + "/t10k-labels-idx1-ubyte")
  }

  func experiment(_ name: String, _ sections: String) throws -> String {
    let path = folder + "/\(name).yaml"
    try FileBytes.writeAtomically(Array("""
      name: \(name)
      run_directory: \(folder)/runs/\(name)
      data: {train: \(folder)/data}
      folds: {k: 2, seed: 0}
      training: {width: 0.35, epochs: 2, batch_size: 8}
      \(sections)
      """.utf8), to: path)
    return path
  }

  let runner = TaskRunner(threads: 1, devices: [.cpu])

  /// Runs a task as a worker would, checks its output against the coordinator's contract
  /// for it and that it reported every epoch; returns its result.
  func run(_ setup: ExperimentSetup, _ task: String, settings: String? = nil, tensors: [WireTensor] = []) throws -> TaskResult {
    let settings = settings ?? setup.settings[task]!
    var epochs: [Int] = []
    let output = try runner.run(TaskAssignment(task: task, attempt: 1, settings: settings, tensors: tensors)) { epochs.append($0.epoch) }
    XCTAssertEqual(epochs, [1, 2], "\(task) reports each epoch")
    let contract = try XCTUnwrap(try setup.resultContracts([task: settings])[task])
    XCTAssertEqual(Dictionary(uniqueKeysWithValues: output.tensors.map { ($0.name, $0.shape) }), contract.tensors, task)
    XCTAssertEqual(output.files.map(\.name), ["checkpoint"], task)
    for file in output.files { XCTAssertLessThanOrEqual(file.bytes.count, contract.files[file.name]!, task) }
    for tensor in output.tensors { XCTAssert(tensor.values.allSatisfy(\.isFinite), "\(task)'s \(tensor.name)") }
    let result = TaskResult(task: task, attempt: 1, tensors: output.tensors, files: output.files)
    try contract.checkContent?(result)
    return result
  }

  /// Every file under `folder` with its size and modification time.
  func snapshot(_ folder: String) throws -> [String: String] {
    var files: [String: String] = [:]
    let enumerator = FileManager.default.enumerator(atPath: folder)
    while let path = enumerator?.nextObject() as? String {
      let attributes = try FileManager.default.attributesOfItem(atPath: folder + "/" + path)
      files[path] = "\(attributes[.size] ?? 0) \((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
    }
    return files
  }

  /// Members on their folds and refits on all data, then a Noisy Student round on the
  /// members' pseudo-labels, then the student on the ensemble's targets and its twin on the
  /// labels: each role's outputs as its contract says, and each phase's payload the
  /// ensemble of what was stored before it, computed without writing a file.
  func testEveryTaskRoleAndEveryPhaseTeacher() throws {
    let path = try experiment("roles", """
      grid: {seed: [0, 1]}
      refit: true
      noisy_student: {rounds: 1, confidence: 0.3, training: {dropout: 0.5}}
      distill: {unlabelled: true, training: {width: 0.35, epochs: 2}}
      """)
    var setup = try ExperimentSetup(file: path)
    var said: [String] = []
    setup.log = { said.append($0) }
    try setup.prepareRunDirectory()
    // The leases carry each task resolved: no worker reads the experiment file.
    try FileManager.default.removeItem(atPath: path)
    let store = ResultStore(runDirectory: setup.experiment.runDirectory)
    let directory = RunDirectory(setup.experiment.runDirectory)
    XCTAssertEqual(setup.tasks, ["seed-0/fold0", "seed-0/fold1", "seed-1/fold0", "seed-1/fold1", "seed-0/all", "seed-1/all"])
    XCTAssertEqual(setup.laterPhaseKinds, [.noisyRound(1), .students])

    // Members: out-of-fold logits of their fold's validation images and test logits;
    // refits: test logits only.
    for task in setup.tasks {
      let result = try run(setup, task)
      let names = Set(result.tensors.map(\.name))
      XCTAssertEqual(names, task.hasSuffix("/all") ? ["test"] : ["oof", "test"], task)
      try store.store(result)
    }

    // The round's teacher: the ensemble of the stored members, made without a file written.
    let before = try snapshot(directory.root)
    let ensemble = try RunEnsemble(setup: setup)
    let round = try setup.preparePhase(1)
    XCTAssertEqual(try snapshot(directory.root), before, "the teacher and the round's payload write nothing")
    XCTAssertEqual(ensemble.members.map(\.name), ["seed-0", "seed-1"])
    let teacherTest = try XCTUnwrap(ensemble.submitted?.test)
    let plan = try XCTUnwrap(setup.experiment.noisyStudent)
    XCTAssertEqual(Set(round.keys), Set(setup.experiment.noisyTasks[0].map(\.id)))
    let pseudo = try XCTUnwrap(round.values.first?.tensors.first { $0.name == "pseudo_labels" })
    XCTAssertEqual(pseudo.shape[1], 2)
    XCTAssertGreaterThan(pseudo.shape[0], 0)
    for row in 0..<pseudo.shape[0] {
      // Each pseudo-label is the ensemble's class for that test image, given at least the
      // round's confidence.
      let (image, label) = (Int(pseudo.values[2 * row]), Int(pseudo.values[2 * row + 1]))
      XCTAssertEqual(label, teacherTest.predictedClass(row: image), "image \(image)")
      XCTAssertGreaterThanOrEqual(exp(teacherTest.logProbabilities[image * teacherTest.classes + label]), plan.confidence)
    }
    XCTAssert(said.contains { $0.hasPrefix("Noisy Student round 1: \(pseudo.shape[0]) pseudo-labels") }, "\(said)")

    // The round's members train on their fold plus the pseudo-labelled images.
    for (task, payload) in round.sorted(by: { $0.key < $1.key }) {
      try store.store(try run(setup, task, settings: payload.settings, tensors: payload.tensors))
    }

    // The students' teacher: the submitted ensemble of members and round, on the training
    // set (its out-of-fold probabilities) and on the unlabelled test images.
    let beforeStudents = try snapshot(directory.root)
    let teacher = try XCTUnwrap(try RunEnsemble(setup: setup).submitted)
    let students = try setup.preparePhase(2)
    XCTAssertEqual(try snapshot(directory.root), beforeStudents, "the students' payload writes nothing")
    let distill = try XCTUnwrap(setup.experiment.distill)
    let (student, alone) = (distill.taskIDs[0], distill.taskIDs[1])
    let targets = try XCTUnwrap(students[student]?.tensors)
    XCTAssertEqual(targets.map(\.name), ["teacher_train", "teacher_test"])
    XCTAssertEqual(targets[0].shape, [48, 3])
    XCTAssertEqual(targets[0].values, distill.distillation.targets(teacher: teacher.outOfFold, labels: setup.data.training.labels))
    XCTAssertEqual(targets[1].shape, [12, 3])
    XCTAssertEqual(targets[1].values, distill.distillation.targets(teacher: teacher.test!, labels: nil))
    XCTAssertEqual(students[alone]?.tensors.count, 0, "the twin learns from the labels alone")

    // Students: test logits only.
    for task in [student, alone] {
      let result = try run(setup, task, settings: students[task]!.settings, tensors: students[task]!.tensors)
      XCTAssertEqual(result.tensors.map(\.name), ["test"], task)
      try store.store(result)
    }

    // The report writes what the teacher computed: its submission is the submitted
    // method's classes.
    let (text, submitted) = try RunReport.combine(setup: setup)
    XCTAssert(text.contains("Students (trained on the whole training set; test scores)"), text)
    let rows = String(decoding: try FileBytes.read(directory.submission), as: UTF8.self).split(separator: "\n").dropFirst()
    let written = rows.map { String($0.split(separator: ",")[1]) }
    let test = try XCTUnwrap(submitted?.test)
    XCTAssertEqual(written, (0..<test.rows).map { String(test.predictedClass(row: $0)) })
  }

  /// Each lease's settings are the task resolved on the coordinator (the variant's whole
  /// configuration for these images, its role, its data source); one of another version, or
  /// an earlier release's settings, is refused by name before anything is loaded.
  func testTaskSpecificationsAreResolvedOnceAndVersioned() throws {
    let path = try experiment("specified", "grid: {seed: [0, 1]}\nrefit: true")
    let setup = try ExperimentSetup(file: path)
    let member = try TaskSpecification.decode(setup.settings["seed-1/fold0"]!, task: "seed-1/fold0")
    XCTAssertEqual(member.role, .member(fold: 0))
    XCTAssertEqual(member.variant, "seed-1")
    XCTAssertEqual(member.configuration.seed, 1)
    XCTAssertEqual(member.configuration.epochs, 2)
    XCTAssertEqual(member.configuration.model.classes, 3)
    XCTAssertEqual(member.configuration.model.imageHeight, 28)
    XCTAssertFalse(member.configuration.restoreBest, "a task keeps its last epoch")
    XCTAssertEqual(member.data.settings["train"], folder + "/data")
    XCTAssertEqual(member.data.foldCount, 2)
    XCTAssertEqual(try TaskSpecification.decode(setup.settings["seed-0/all"]!, task: "seed-0/all").role, .refit)
    XCTAssertFalse(setup.settings.values.contains { $0.contains("grid:") }, "no experiment text travels")

    var future = member
    future.version = TaskSpecification.currentVersion + 1
    let earlier = #"{"experiment":"name: x","file":"x.yaml","variant":"seed-0","fold":0}"#
    for (settings, says) in [(try future.encoded(), "version \(TaskSpecification.currentVersion + 1)"), (earlier, "version none")] {
      XCTAssertThrowsError(try runner.run(TaskAssignment(task: "seed-1/fold0", attempt: 1, settings: settings)) { _ in }) { error in
        XCTAssert("\(error)".contains("task seed-1/fold0: a task specification of \(says); this worker reads version \(TaskSpecification.currentVersion)"), "\(error)")
      }
    }
  }

  /// A search's trial: trained on its fold, scored there, no test logits (the test images
  /// must not steer the search).
  func testASearchTrialReturnsItsFoldsLogitsAndNoTestLogits() throws {
    let path = try experiment("search", """
      search:
        sampler: random
        trials: 2
        folds: 1
        best: 1
        seed: 1
        space:
          learning_rate: {log_uniform: [0.001, 0.1]}
      """)
    let setup = try ExperimentSetup(file: path)
    try setup.prepareRunDirectory()
    XCTAssertEqual(setup.tasks, [], "a search's trials are proposed as the run goes")
    guard case .tasks(let proposed) = try SearchTrialSource(setup: setup).next(unfinished: []) else {
      return XCTFail("no trial proposed")
    }
    XCTAssertEqual(proposed.map(\.task), ["trial-0/fold0"])
    let result = try run(setup, proposed[0].task, settings: proposed[0].settings)
    XCTAssertEqual(result.tensors.map(\.name), ["oof"])
    XCTAssertEqual(result.tensors[0].shape, [setup.data.folds.split(0).validation.count, 3])

  }
}
