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
  public func resultContracts() throws -> [String: ResultContract] { try resultContracts(settings) }

  /// The contracts of the tasks of `settings` (task → its settings): a phase's, as its
  /// preparation settled them (a search's trials and members: their sampled width decides
  /// their checkpoints' size).
  public func resultContracts(_ settings: [String: String]) throws -> [String: ResultContract] {
    let classes = data.training.classes
    var sizes: [String: Int] = [:]
    var contracts: [String: ResultContract] = [:]
    for (task, json) in settings.sorted(by: { $0.key < $1.key }) {
      let specification = try TaskSpecification.decode(json, task: task)
      var tensors: [String: [Int]] = [:]
      if let fold = specification.role.fold { tensors["oof"] = [data.folds.split(fold).validation.count, classes] }
      // A search's trial is scored on its fold alone: no test logits.
      if let test = data.test, !specification.role.isTrial { tensors["test"] = [test.count, classes] }
      let model = specification.configuration.model
      let key = specification.variant
      if sizes[key] == nil { sizes[key] = try ModelCheckpoint.size(of: model) }
      // The description (normalisation, settings) varies by a few bytes; 64 KiB covers it.
      let bound = sizes[key]! + 64 * 1024
      contracts[task] = ResultContract(tensors: tensors, files: ["checkpoint": bound]) { result in
        guard let checkpoint = result.files.first(where: { $0.name == "checkpoint" }) else { return }
        try ModelCheckpoint.check(checkpoint.bytes, name: "the checkpoint of \(result.task)", configuration: model)
      }
    }
    return contracts
  }
}
