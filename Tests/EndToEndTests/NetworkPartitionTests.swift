import Data
import Files
import Foundation
import QuorumTestSupport
import XCTest

/// A real network partition: the coordinator and three workers each in their own network
/// namespace, joined through a bridge by veth pairs, CURVE-encrypted. One worker's link is
/// cut while it holds a lease, for longer than the liveness timeout, then restored: its
/// lease expires, another worker does the task, and the run completes with every task
/// stored once. Needs root and `ip netns`; skips, saying why, where they are missing.
final class NetworkPartitionTests: XCTestCase {
  var folder = ""
  var namespaces: [String] = []
  let prefix = "q\(getpid() % 100_000)"

  override func setUpWithError() throws {
    guard getuid() == 0 else { throw XCTSkip("needs root to create network namespaces (ip netns)") }
    guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") || FileManager.default.isExecutableFile(atPath: "/sbin/ip") else {
      throw XCTSkip("needs the ip command (Debian iproute2)")
    }
    guard FileManager.default.fileExists(atPath: fashionMNISTFolder + "/train-images-idx3-ubyte.gz") else {
      throw XCTSkip("Fashion-MNIST is missing at \(fashionMNISTFolder): run scripts/setup.sh (CI does)")
    }
    folder = try temporaryFolder()
    let probe = "\(prefix)-probe"
    guard (try? ip(["netns", "add", probe])) != nil else {
      throw XCTSkip("this machine refuses to create network namespaces (a container without CAP_SYS_ADMIN?)")
    }
    _ = try? ip(["netns", "del", probe])
  }

  override func tearDownWithError() throws {
    for namespace in namespaces.reversed() { _ = try? ip(["netns", "del", namespace]) }
    try? FileManager.default.removeItem(atPath: folder)
  }

  @discardableResult
  func ip(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw XCTSkip("ip \(arguments.joined(separator: " ")): \(output)") }
    return output
  }

  /// A hub namespace with a bridge; each host a namespace with one veth into the bridge.
  func buildNetwork(hosts: [String]) throws -> [String: String] {
    let hub = "\(prefix)-hub"
    try ip(["netns", "add", hub])
    namespaces.append(hub)
    try ip(["-n", hub, "link", "add", "br0", "type", "bridge"])
    try ip(["-n", hub, "link", "set", "br0", "up"])
    var addresses: [String: String] = [:]
    for (index, host) in hosts.enumerated() {
      let namespace = "\(prefix)-\(host)"
      try ip(["netns", "add", namespace])
      namespaces.append(namespace)
      try ip(["-n", namespace, "link", "set", "lo", "up"])
      // One end in the host's namespace (eth0), the other in the hub, on the bridge.
      try ip(["-n", hub, "link", "add", "v\(index)", "type", "veth", "peer", "name", "eth0", "netns", namespace])
      try ip(["-n", hub, "link", "set", "v\(index)", "master", "br0", "up"])
      let address = "10.77.0.\(index + 1)"
      try ip(["-n", namespace, "addr", "add", address + "/24", "dev", "eth0"])
      try ip(["-n", namespace, "link", "set", "eth0", "up"])
      addresses[host] = address
    }
    return addresses
  }

  func startIn(_ host: String, _ arguments: [String]) throws -> (Process, Pipe) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
    process.arguments = ["netns", "exec", "\(prefix)-\(host)", quorumExecutable.path] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    return (process, pipe)
  }

  func journal() -> String { String(decoding: (try? FileBytes.read("\(folder)/runs/partition/journal.jsonl")) ?? [], as: UTF8.self) }

  func testACutLinkLosesTheLeaseAndTheRunCompletes() throws {
    let hosts = ["coordinator", "w1", "w2", "w3"]
    let addresses = try buildNetwork(hosts: hosts)
    let keys = folder + "/keys"
    for name in hosts { XCTAssertEqual(try runQuorum(["keys", "generate", name, "--dir", keys]).status, 0) }
    try FileManager.default.createDirectory(atPath: keys + "/workers", withIntermediateDirectories: true)
    for name in hosts.dropFirst() { try FileManager.default.copyItem(atPath: "\(keys)/\(name).pub", toPath: "\(keys)/workers/\(name).pub") }
    let file = folder + "/partition.yaml"
    try FileBytes.writeAtomically(Array("""
      name: partition
      run_directory: \(folder)/runs/partition
      data: {train: \(fashionMNISTFolder), long_tail_ratio: 100}
      folds: {k: 2, seed: 0}
      training: {width: 0.35, epochs: 2, batch_size: 64}
      grid: {seed: [0, 1]}
      """.utf8), to: file)
    let endpoint = "tcp://\(addresses["coordinator"]!):5555"
    let (coordinator, coordinatorOutput) = try startIn("coordinator", [
      "coordinator", file, "--bind", endpoint, "--key", "\(keys)/coordinator.key", "--allow", "\(keys)/workers", "--status", "off",
    ])
    var workers: [Process] = []
    for name in hosts.dropFirst() {
      workers.append(try startIn(name, [
        "worker", "--connect", endpoint, "--name", name, "--threads", "1", "--key", "\(keys)/\(name).key",
        "--server-key", "\(keys)/coordinator.pub",
      ]).0)
    }
    defer { for process in workers + [coordinator] where process.isRunning { process.terminate() } }
    // Cut w1's link once it holds a lease, for twice the liveness timeout.
    let deadline = Date().addingTimeInterval(90)
    while Date() < deadline && !journal().contains("\"worker\":\"w1\"") { Thread.sleep(forTimeInterval: 0.05) }
    XCTAssert(journal().contains("\"worker\":\"w1\""), "w1 got a lease")
    try ip(["-n", "\(prefix)-hub", "link", "set", "v1", "down"])
    Thread.sleep(forTimeInterval: 10)
    try ip(["-n", "\(prefix)-hub", "link", "set", "v1", "up"])

    let output = String(decoding: coordinatorOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    coordinator.waitUntilExit()
    XCTAssertEqual(coordinator.terminationStatus, 0, output)
    let lines = journal().split(separator: "\n")
    let stored = lines.filter { $0.contains("\"stored\"") }
    XCTAssertEqual(stored.count, 4, "every task stored exactly once:\n\(lines.joined(separator: "\n"))")
    let storedTasks = stored.compactMap { line in line.range(of: "\"task\":\"[^\"]+\"", options: .regularExpression).map { String(line[$0]) } }
    XCTAssertEqual(Set(storedTasks).count, 4)
    XCTAssert(lines.contains { $0.contains("\"expired\"") && $0.contains("\"w1\"") }, "w1's lease expired while its link was down:\n\(output)")
  }
}
