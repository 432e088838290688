import Files
import Wire
import RunLayout

/// Where results land in the run directory, each file written atomically (temporary file,
/// fsync, rename: a crash leaves the old state or the new, never half a file):
/// - logits/TASK.NAME.npy: float32 tensors, readable by numpy;
/// - checkpoints/TASK.safetensors: the file named "checkpoint" (loads into torchvision);
/// - files/TASK.NAME: any other file.
/// TASK is "VARIANT/foldK", so each variant has a folder. Names are checked by Wire to be
/// plain words, so nothing lands outside the run directory.
public struct ResultStore {
  public let runDirectory: String
  let run: RunDirectory

  public init(runDirectory: String) {
    self.runDirectory = runDirectory
    run = RunDirectory(runDirectory)
  }

  public func path(task: String, tensor: String) -> String { run.logits(task: task, tensor: tensor) }

  public func path(task: String, file: String) -> String {
    file == "checkpoint" ? run.checkpoint(task: task) : run.file(task: task, name: file)
  }

  public func store(_ result: TaskResult) throws {
    // Files first, logits last: the logits' presence is what later steps look for.
    for file in result.files {
      try FileBytes.writeAtomically(file.bytes, to: path(task: result.task, file: file.name))
    }
    for tensor in result.tensors {
      try NumPy.write(tensor.values, shape: tensor.shape, to: path(task: result.task, tensor: tensor.name))
    }
  }
}
