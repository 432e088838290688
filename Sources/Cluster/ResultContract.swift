import Wire

/// What a task's result must hold, checked by the coordinator before it stores anything:
/// exactly these tensors with these shapes, these files no larger than their bounds, and
/// then what only the decoded content can show (a checkpoint that loads into the task's
/// model). A result that breaks it is refused and counted as a failed attempt, so a peer
/// that sends junk cannot end a task as stored, nor make the coordinator decode more than
/// the task's true result.
public struct ResultContract: Sendable {
  /// Every tensor the result must carry, by name: its shape.
  public var tensors: [String: [Int]]
  /// Every file the result must carry, by name: the most bytes it may have.
  public var files: [String: Int]
  /// A check of the decoded result (throws what is wrong); runs before it is stored.
  public var checkContent: (@Sendable (TaskResult) throws -> Void)?

  public init(tensors: [String: [Int]], files: [String: Int], checkContent: (@Sendable (TaskResult) throws -> Void)? = nil) {
    self.tensors = tensors
    self.files = files
    self.checkContent = checkContent
  }

  /// What is wrong with a result's declaration, or nil when it is what the task returns.
  public func problem(with declaration: ResultDeclaration) -> String? {
    let declaredTensors = Dictionary(declaration.tensors.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
    let declaredFiles = Dictionary(declaration.files.map { ($0.name, $0.bytes) }, uniquingKeysWith: { first, _ in first })
    for name in declaredTensors.keys.sorted() where tensors[name] == nil {
      return "an unexpected tensor \"\(name.prefix(64))\" (the task returns \(list(tensors.keys)))"
    }
    for name in declaredFiles.keys.sorted() where files[name] == nil {
      return "an unexpected file \"\(name.prefix(64))\" (the task returns \(list(files.keys)))"
    }
    for (name, shape) in tensors.sorted(by: { $0.key < $1.key }) {
      guard let declared = declaredTensors[name] else { return "no tensor \"\(name)\"" }
      guard declared == shape else { return "tensor \"\(name)\" of shape \(declared.prefix(8)), the task's is \(shape)" }
    }
    for (name, bound) in files.sorted(by: { $0.key < $1.key }) {
      guard let declared = declaredFiles[name] else { return "no file \"\(name)\"" }
      guard let bytes = declared, bytes <= bound else {
        return "file \"\(name)\" declares \(declared.map { "\($0) bytes" } ?? "an impossible size"), the task's is at most \(bound)"
      }
    }
    return nil
  }

  private func list(_ names: Dictionary<String, some Any>.Keys) -> String {
    names.isEmpty ? "none" : names.sorted().joined(separator: ", ")
  }
}
