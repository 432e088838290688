import Cluster
import Experiment
import Foundation
import Training
import Wire

extension ExperimentSetup {
  /// What each task's result must hold: a member's out-of-fold logits of its fold's
  /// validation examples ("oof"), every task's test logits where the experiment has a
  /// test set ("test"), and a checkpoint of the variant's model, no larger than that
  /// model's checkpoint (its description aside) and loading into it.
  func resultContracts() throws -> [String: ResultContract] { try resultContracts(settings) }

  /// The contracts of the tasks of `settings` (task → its settings): a phase's, as its
  /// preparation settled them (a search's trials and members: their sampled width decides
  /// their checkpoints' size).
  func resultContracts(_ settings: [String: String]) throws -> [String: ResultContract] {
    let classes = data.training.classes
    var sizes: [String: Int] = [:]
    var contracts: [String: ResultContract] = [:]
    for (task, json) in settings.sorted(by: { $0.key < $1.key }) {
      let taskSettings = try JSONDecoder().decode(TaskSettings.self, from: Data(json.utf8))
      let role = try TaskRunner.role(of: taskSettings, in: experiment)
      var tensors: [String: [Int]] = [:]
      let variant: Experiment.Variant
      switch role {
      case .member(let member, let fold):
        variant = member
        tensors["oof"] = [data.folds.split(fold).validation.count, classes]
      case .refit(let refit): variant = refit
      case .student(let student): variant = student
      }
      // A search's trial is scored on its fold alone: no test logits.
      if let test = data.test, !taskSettings.isSearchTrial(in: experiment) { tensors["test"] = [test.count, classes] }
      let model = try TaskRunner.configuration(of: variant, for: data.training, file: experiment.file).model
      if sizes[variant.name] == nil { sizes[variant.name] = try ModelCheckpoint.size(of: model) }
      // The description (normalisation, settings) varies by a few bytes; 64 KiB covers it.
      let bound = sizes[variant.name]! + 64 * 1024
      contracts[task] = ResultContract(tensors: tensors, files: ["checkpoint": bound]) { result in
        guard let checkpoint = result.files.first(where: { $0.name == "checkpoint" }) else { return }
        try ModelCheckpoint.check(checkpoint.bytes, name: "the checkpoint of \(result.task)", configuration: model)
      }
    }
    return contracts
  }
}
