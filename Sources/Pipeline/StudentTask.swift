import Cluster
import Data
import Experiment
import Foundation
import Training
import Wire

extension TaskRunner {
  /// A student (the whole training set): towards the teacher's targets when the
  /// task brings them (and on the test images too, where it brings those), else on the
  /// labels; returns its test logits and checkpoint.
  public func runStudent(
    _ task: TaskAssignment, _ specification: TaskSpecification, data: ExperimentData, progress: @escaping (ProgressReport) -> Void
  ) throws -> TaskOutput {
    var training = data.training
    var targets: [Float]?
    if let teacher = task.tensors.first(where: { $0.name == "teacher_train" }) {
      guard teacher.shape == [training.count, training.classes] else {
        throw ExperimentError(file: specification.data.file, line: nil, "task \(task.task): teacher targets of shape \(teacher.shape) for \(training.count) examples of \(training.classes) classes")
      }
      targets = teacher.values
      if let unlabelled = task.tensors.first(where: { $0.name == "teacher_test" }), let test = data.test, unlabelled.shape == [test.count, training.classes] {
        // The test images join the training set with the teacher's targets only; their
        // "labels" (the teacher's classes) serve the samplers, not the loss.
        let classes = training.classes
        let labels = (0..<test.count).map { row -> Int32 in
          let slice = unlabelled.values[(row * classes)..<((row + 1) * classes)]
          return Int32(slice.indices.max { slice[$0] < slice[$1] }! - row * classes)
        }
        training = training.appending(ImageDataset(
          pixels: test.pixels, labels: labels, height: test.height, width: test.width, channels: test.channels, classes: training.classes))
        targets! += unlabelled.values
      }
    }
    return try train(task, specification, data: TrainingData(training: training, test: data.test, targets: targets), progress: progress)
  }
}
