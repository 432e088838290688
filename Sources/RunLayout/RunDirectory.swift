/// Every path of a run directory, in one place (docs/cluster.md, "The run directory"):
///
///     experiment.yaml  folds.npy  journal.jsonl  progress.jsonl
///     logits/TASK.TENSOR.npy          (TASK = VARIANT/foldK or VARIANT/all)
///     checkpoints/TASK.safetensors
///     files/TASK.NAME
///     ensemble/submitted.json, weights.json, stacker.json, mlp-stacker.json
///     report.html  scores.csv  submission.csv
///     search.csv  search.json              (a hyper-parameter search's trials and choice)
///     data/HASH.qdata                      (the data set served to workers: DataBundle)
///
/// A member's files are its task's: `memberOutOfFold(variant:fold:)` is
/// `logits(task: "VARIANT/foldK", tensor: "oof")`, so what the coordinator stores and what
/// the ensemble reads cannot drift apart.
public struct RunDirectory: Equatable, Sendable {
  public let root: String

  public init(_ root: String) { self.root = root }

  func at(_ relative: String) -> String { root + "/" + relative }

  // The run's fixed files.
  public var experiment: String { at("experiment.yaml") }
  public var folds: String { at("folds.npy") }
  public var journal: String { at("journal.jsonl") }
  public var progress: String { at("progress.jsonl") }

  // The ensemble's outputs.
  public var report: String { at("report.html") }
  public var scores: String { at("scores.csv") }
  public var submission: String { at("submission.csv") }
  public var ensemble: String { at("ensemble") }
  public func ensembleFile(_ name: String) -> String { at("ensemble/" + name) }
  public var submittedEnsemble: String { ensembleFile("submitted.json") }

  /// Where the data set served to workers is kept, by its hash.
  public var servedData: String { at("data") }

  // A hyper-parameter search's outputs: every trial (search.csv), the chosen (search.json).
  public var searchTable: String { at("search.csv") }
  public var searchResults: String { at("search.json") }

  // A task's results (names checked by Wire to be plain words: nothing lands outside).
  public func logits(task: String, tensor: String) -> String { at("logits/\(task).\(tensor).npy") }
  public func checkpoint(task: String) -> String { at("checkpoints/\(task).safetensors") }
  public func file(task: String, name: String) -> String { at("files/\(task).\(name)") }

  /// The task id of a variant's fold model ("VARIANT/foldK") and of its model retrained on
  /// all the training data ("VARIANT/all").
  public static func task(variant: String, fold: Int) -> String { "\(variant)/fold\(fold)" }
  public static func refitTask(variant: String) -> String { "\(variant)/all" }

  // A member's files, by variant and fold.
  public func memberOutOfFold(variant: String, fold: Int) -> String { logits(task: Self.task(variant: variant, fold: fold), tensor: "oof") }
  public func memberTest(variant: String, fold: Int) -> String { logits(task: Self.task(variant: variant, fold: fold), tensor: "test") }
  public func memberCheckpoint(variant: String, fold: Int) -> String { checkpoint(task: Self.task(variant: variant, fold: fold)) }
  public func refitTest(variant: String) -> String { logits(task: Self.refitTask(variant: variant), tensor: "test") }
  public func refitCheckpoint(variant: String) -> String { checkpoint(task: Self.refitTask(variant: variant)) }
}
