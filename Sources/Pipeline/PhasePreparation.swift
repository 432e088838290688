import Data
import Ensemble
import Experiment
import Foundation
import Wire

/// The payloads of the phases that learn from the members: a Noisy Student round's
/// pseudo-labels and the students' teacher targets, both from the ensemble of the tasks
/// stored so far (`RunEnsemble`, which writes nothing).
extension ExperimentSetup {
  /// Round r's pseudo-labels: the current ensemble's (members and earlier rounds) confident
  /// test predictions, balanced over the classes, as (image index, label) rows.
  public func prepareNoisyRound(_ round: Int) throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.noisyStudent else { return [:] }
    let teacher = try RunEnsemble(setup: self).submitted
    guard let test = teacher?.test else {
      throw ExperimentError(file: experiment.file, line: nil, "Noisy Student needs test images to pseudo-label, and an ensemble to label them")
    }
    let chosen = PseudoLabels.select(test, confidence: plan.confidence, perClass: plan.perClass)
    // What the round will see, and the classes it will not: said before hours are spent.
    let counts = PseudoLabels.confidentCounts(test, confidence: plan.confidence)
    let classNames = data.training.classNames ?? (0..<counts.count).map(String.init)
    var summary = "Noisy Student round \(round): \(chosen.count) pseudo-labels from the test images the ensemble gives ≥ \(plan.confidence); "
      + "confident images per class: " + zip(classNames, counts).map { "\($0) \($1)" }.joined(separator: ", ")
    let missing = zip(classNames, counts).filter { $0.1 == 0 }.map(\.0)
    if !missing.isEmpty {
      summary += "\nwarning: no pseudo-label for \(missing.joined(separator: ", ")): the round's students see extra images of the other classes only "
        + "and lean towards them; lower noisy_student confidence (Xie et al. used 0.3)"
    }
    log(summary)
    guard !chosen.isEmpty else {
      throw ExperimentError(file: experiment.file, line: nil, "no test image reaches the pseudo-label confidence \(plan.confidence): lower noisy_student confidence")
    }
    let pseudo = WireTensor(name: "pseudo_labels", shape: [chosen.count, 2], values: chosen.flatMap { [Float($0.index), Float($0.label)] })
    var payloads: [String: (settings: String, tensors: [WireTensor])] = [:]
    for task in experiment.noisyTasks[round - 1] { payloads[task.id] = (settings[task.id] ?? "{}", [pseudo]) }
    return payloads
  }

  /// The later tasks' payloads, once every member is done: the teacher's targets (the
  /// submitted ensemble's out-of-fold probabilities on the training set, its test
  /// probabilities on the test images) for the student; nothing for its twin.
  public func prepareStudents() throws -> [String: (settings: String, tensors: [WireTensor])] {
    guard let plan = experiment.distill else { return [:] }
    guard let teacher = try RunEnsemble(setup: self).submitted else { throw ExperimentError(file: experiment.file, line: nil, "no complete member to distill from") }
    let training = data.training
    let classes = training.classes
    var tensors = [WireTensor(
      name: "teacher_train", shape: [training.count, classes],
      values: plan.distillation.targets(teacher: teacher.outOfFold, labels: training.labels))]
    if plan.unlabelled, let test = teacher.test {
      tensors.append(WireTensor(name: "teacher_test", shape: [test.rows, classes], values: plan.distillation.targets(teacher: test, labels: nil)))
    }
    let (student, alone) = (plan.taskIDs[0], plan.taskIDs[1])
    return [student: (settings[student] ?? "{}", tensors), alone: (settings[alone] ?? "{}", [])]
  }

}
