import Data
import Wire

/// Where results land in the run directory: logits/TASK.NAME.npy (float32, readable by
/// numpy), each written atomically (temporary file, fsync, rename: a crash leaves the old
/// state or the new, never half a file).
public struct ResultStore {
  public let runDirectory: String

  public init(runDirectory: String) { self.runDirectory = runDirectory }

  public func path(task: String, tensor: String) -> String { "\(runDirectory)/logits/\(task).\(tensor).npy" }

  public func store(_ result: TaskResult) throws {
    for tensor in result.tensors {
      try NumPy.write(tensor.values, shape: tensor.shape, to: path(task: result.task, tensor: tensor.name))
    }
  }
}
