import Cluster
import Foundation

/// The result contracts, shared by the coordinator's loop and its phase preparation.
public final class PhaseContracts: @unchecked Sendable {
  private let lock = NSLock()
  private var contracts: [String: ResultContract]

  public init(_ contracts: [String: ResultContract]) { self.contracts = contracts }

  public subscript(task: String) -> ResultContract? {
    lock.lock()
    defer { lock.unlock() }
    return contracts[task]
  }

  public func update(_ changed: [String: ResultContract]) {
    lock.lock()
    contracts.merge(changed) { $1 }
    lock.unlock()
  }
}
