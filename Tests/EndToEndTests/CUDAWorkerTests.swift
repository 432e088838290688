import Data
import Files
import Foundation
import NN
import QuorumTestSupport
import Tensor
import Training
import XCTest

/// `quorum run` with `device: cuda-emulated`: a coordinator and a real worker process
/// training on the CUDA backend over the emulated device, beside the same run on the CPU;
/// and a device that runs out of memory, which fails the tasks with the reason while the
/// worker stays up.
final class CUDAWorkerTests: XCTestCase {
  var folder = ""
  /// The emulated device, or the GPU of QUORUM_TEST_DEVICE (scripts/bench/gpu.sh).
  let device = ProcessInfo.processInfo.environment["QUORUM_TEST_DEVICE"] ?? "cuda-emulated"
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  /// A small, learnable data set in Fashion-MNIST's file names: 4 classes, each a bright
  /// band at its own height, with noise.
  func writeDataset() throws -> String {
    let data = folder + "/data"
    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
    for (prefix, count, salt) in [("train", 64, 0), ("t10k", 16, 1)] {
      var pixels = [UInt8](repeating: 0, count: count * 28 * 28)
      var labels = [UInt8](repeating: 0, count: count)
      for n in 0..<count {
        let label = (n * 3 + salt) % 4
        labels[n] = UInt8(label)
        for y in 0..<28 {
          for x in 0..<28 { pixels[(n * 28 + y) * 28 + x] = (y / 7 == label ? 170 : 0) &+ UInt8((n * 7919 + salt * 13 + y * 31 + x * 17) % 70) }
        }
      }
      try FileBytes.writeAtomically(idxBytes(shape: [count, 28, 28], payload: pixels), to: "\(data)/\(prefix)-images-idx3-ubyte")
      try FileBytes.writeAtomically(idxBytes(shape: [count], payload: labels), to: "\(data)/\(prefix)-labels-idx1-ubyte")
    }
    return data
  }

  /// Two tasks (one variant × two folds) on `device`; `grid` adds variants.
  func experiment(_ name: String, device: String, data: String, grid: String = "") throws -> String {
    let path = folder + "/\(name).yaml"
    try FileBytes.writeAtomically(Array("""
      name: \(name)
      run_directory: \(folder)/runs/\(name)
      device: \(device)
      data: {train: \(data)}
      folds: {k: 2, seed: 0}
      training: {width: 0.35, epochs: 2, batch_size: 16, learning_rate: 0.05, seed: 3}
      \(grid)
      """.utf8), to: path)
    return path
  }

  /// Several members on one device: a worker with --members-per-device 3 trains three of
  /// the four tasks at once (three leases before the first result), each on a backend and
  /// stream of its own, and every task's logits are the bits of the same task trained alone.
  func testThreeMembersAtOnceEqualEachMemberTrainedAlone() throws {
    let data = try writeDataset()
    let fast = ["QUORUM_EMULATOR_CHECKS": "fast"]
    let grid = "grid: {seed: [3, 4]}"
    let alone = try runQuorum(["run", try experiment("alone", device: device, data: data, grid: grid), "--workers", "1", "--threads", "2"], environment: fast)
    XCTAssertEqual(alone.status, 0, alone.output)
    let together = try runQuorum(
      ["run", try experiment("together", device: device, data: data, grid: grid), "--workers", "1", "--threads", "2", "--members-per-device", "3"],
      environment: fast)
    XCTAssertEqual(together.status, 0, together.output)
    XCTAssert(together.output.contains("3 members at once"), together.output)
    let journal = String(decoding: try FileBytes.read("\(folder)/runs/together/journal.jsonl"), as: UTF8.self).split(separator: "\n")
    let firstStored = try XCTUnwrap(journal.firstIndex { $0.contains("\"stored\"") })
    XCTAssertEqual(journal[..<firstStored].filter { $0.contains("\"leased\"") }.count, 3, "three tasks leased at once:\n\(journal.joined(separator: "\n"))")
    for variant in ["seed-3", "seed-4"] {
      for file in ["fold0.oof", "fold1.oof", "fold0.test", "fold1.test"] {
        XCTAssertEqual(
          try logits("together", "\(variant)/\(file)").map(\.bitPattern), try logits("alone", "\(variant)/\(file)").map(\.bitPattern),
          "\(variant)/\(file)")
      }
    }
  }

  /// Every GPU of a machine: `device: cuda-emulated:all` on an emulated driver that shows
  /// two GPUs (QUORUM_EMULATOR_DEVICES=2). One worker serves both: its hello names both,
  /// it holds two leases before the first result, one task trains on each GPU, and each
  /// task's logits are the bits of the same task trained on one GPU alone.
  func testEveryGPUOfTheMachineTrainsATaskOfItsOwn() throws {
    guard device == "cuda-emulated" else { throw XCTSkip("the emulated driver's GPU count is set on the emulated device only") }
    let data = try writeDataset()
    let twoGPUs = ["QUORUM_EMULATOR_CHECKS": "fast", "QUORUM_EMULATOR_DEVICES": "2"]
    let alone = try runQuorum(["run", try experiment("one-gpu", device: "cuda-emulated", data: data), "--workers", "1", "--threads", "2"], environment: twoGPUs)
    XCTAssertEqual(alone.status, 0, alone.output)
    let every = try runQuorum(["run", try experiment("every-gpu", device: "cuda-emulated:all", data: data), "--workers", "1", "--threads", "2"], environment: twoGPUs)
    XCTAssertEqual(every.status, 0, every.output)
    XCTAssert(every.output.contains("(cuda-emulated, cuda-emulated:1, 2 threads)"), "the hello names both GPUs:\n\(every.output)")
    XCTAssert(every.output.contains("2 members at once (1 per device)"), every.output)
    for gpu in 0..<2 {
      XCTAssertEqual(
        every.output.components(separatedBy: "trains on cuda:\(gpu) (Quorum emulated CUDA device (CPU)").count - 1, 1, "one task on GPU \(gpu):\n\(every.output)")
    }
    let journal = String(decoding: try FileBytes.read("\(folder)/runs/every-gpu/journal.jsonl"), as: UTF8.self).split(separator: "\n")
    let firstStored = try XCTUnwrap(journal.firstIndex { $0.contains("\"stored\"") })
    XCTAssertEqual(journal[..<firstStored].filter { $0.contains("\"leased\"") }.count, 2, "both tasks leased at once:\n\(journal.joined(separator: "\n"))")
    for file in ["fold0.oof", "fold1.oof", "fold0.test", "fold1.test"] {
      XCTAssertEqual(try logits("every-gpu", "default/\(file)").map(\.bitPattern), try logits("one-gpu", "default/\(file)").map(\.bitPattern), file)
    }
    // quorum doctor finds both, and starts the backend on each as a worker would.
    let doctor = try runQuorum(["doctor", "--device", "cuda-emulated:all"], environment: twoGPUs)
    XCTAssertEqual(doctor.status, 0, doctor.output)
    for gpu in 0..<2 {
      XCTAssert(doctor.output.contains("GPU \(gpu)        Quorum emulated CUDA device (CPU) (sm_90)"), doctor.output)
      XCTAssert(doctor.output.contains("backend \(gpu)    cuda:\(gpu) (Quorum emulated CUDA device (CPU), sm_90, float32) starts"), doctor.output)
    }
    XCTAssert(doctor.output.contains("--device cuda-emulated:all serves these 2 from one worker"), doctor.output)
    let missing = try runQuorum(["worker", "--connect", "tcp://127.0.0.1:1", "--device", "cuda-emulated:2"], environment: twoGPUs)
    XCTAssertEqual(missing.status, 64, missing.output)
    XCTAssert(missing.output.contains("--device cuda-emulated:2: no GPU 2 (this machine has 2: cuda-emulated:0…cuda-emulated:1)"), missing.output)
  }

  func logits(_ name: String, _ file: String) throws -> [Float] {
    try NumPy.readFloat32("\(folder)/runs/\(name)/logits/\(file).npy").values
  }

  /// The two tasks train on the emulated device in a worker process and ship their logits
  /// and checkpoints. Each checkpoint, evaluated by the CPU backend, gives the logits the
  /// device shipped (float32 forward passes on two backends agree to rounding), and loads
  /// with torchvision's names. Against the same run trained on the CPU, the logits follow
  /// the CPU's course: float32 training of batches of 16 is chaotic (CUDABackendTrainingTests
  /// measures it), so after four steps they agree to a tenth of their scale, not to rounding.
  func testARunOnTheEmulatedCUDADeviceMatchesTheSameRunOnTheCPU() throws {
    let data = try writeDataset()
    let fast = ["QUORUM_EMULATOR_CHECKS": "fast"]
    let cpu = try runQuorum(["run", try experiment("cpu", device: "cpu", data: data), "--workers", "1", "--threads", "2"])
    XCTAssertEqual(cpu.status, 0, cpu.output)
    let cuda = try runQuorum(["run", try experiment("cuda", device: device, data: data), "--workers", "1", "--threads", "2"], environment: fast)
    XCTAssertEqual(cuda.status, 0, cuda.output)
    XCTAssert(cuda.output.contains("training on cuda:0 (Quorum emulated CUDA device (CPU)"), cuda.output)
    XCTAssert(cuda.output.contains("(\(device), 2 threads)"), "the worker's hello names its device:\n\(cuda.output)")
    // The CPU run's tensor names, which CheckpointTests holds to torchvision's state dict.
    let names = try Safetensors.read("\(folder)/runs/cpu/checkpoints/default/fold0.safetensors").entries.map(\.name)
    XCTAssertEqual(names.count, 314, "torchvision's mobilenet_v2 has 314 tensors")
    let training = try ImageDataset.loadIDX(images: data + "/train-images-idx3-ubyte", labels: data + "/train-labels-idx1-ubyte")
    let test = try ImageDataset.loadIDX(images: data + "/t10k-images-idx3-ubyte", labels: data + "/t10k-labels-idx1-ubyte")
    for fold in ["fold0", "fold1"] {
      let path = "\(folder)/runs/cuda/checkpoints/default/\(fold).safetensors"
      XCTAssertEqual(try Safetensors.read(path).entries.map(\.name), names, path)
      let recorded = try ModelCheckpoint.description(of: path)
      var configuration = TrainingConfiguration(model: recorded.configuration)
      configuration.batchSize = 16
      let trainer = try Trainer(
        configuration: configuration, data: TrainingData(training: training), backend: CPUBackend(threads: 1), threads: 1,
        outputFolder: nil, normalization: (recorded.mean, recorded.std))
      try ModelCheckpoint.load(path, into: trainer.model)
      let onCPU = trainer.evaluate(test).logits
      let shipped = try logits("cuda", "default/\(fold).test")
      let scale = max(onCPU.map(abs).max() ?? 1, 1)
      let worst = zip(onCPU, shipped).map { abs($0 - $1) }.max() ?? .infinity
      XCTAssertEqual(onCPU.count, shipped.count, fold)
      XCTAssertLessThan(worst, 1e-4 * scale, "\(fold): the CPU backend's logits of the device's checkpoint differ from the shipped ones by \(worst)")
    }
    for file in ["fold0.oof", "fold1.oof", "fold0.test", "fold1.test"] {
      let (reference, emulated) = (try logits("cpu", "default/\(file)"), try logits("cuda", "default/\(file)"))
      XCTAssertEqual(reference.count, emulated.count, file)
      let scale = max(reference.map(abs).max() ?? 1, 1)
      let worst = zip(reference, emulated).map { abs($0 - $1) }.max() ?? .infinity
      XCTAssertLessThan(worst, 0.1 * scale, "\(file): the emulated run's logits drift from the CPU run's by \(worst) (scale \(scale))")
    }
  }

  /// A device too small for the model: every attempt of both tasks fails with the reason
  /// (out of device memory, the operation, the batch size, what to lower), the worker hands
  /// each back and stays up for the next, and the run ends with the failures listed.
  func testOutOfDeviceMemoryFailsTheTasksWithTheReasonAndTheWorkerStaysUp() throws {
    guard device == "cuda-emulated" else { throw XCTSkip("a device's size is set on the emulated device only") }
    let data = try writeDataset()
    let small = ["QUORUM_EMULATOR_CHECKS": "fast", "QUORUM_EMULATOR_MEMORY": String(3 << 20)]
    let result = try runQuorum(["run", try experiment("oom", device: "cuda-emulated", data: data), "--workers", "1", "--threads", "2"], environment: small)
    XCTAssertEqual(result.status, 1, result.output)
    XCTAssert(result.output.contains("2 tasks failed"), result.output)
    for task in ["default/fold0", "default/fold1"] {
      let line = try XCTUnwrap(result.output.split(separator: "\n").first { $0.contains("\(task): 3 attempts, last:") }, result.output)
      XCTAssert(line.contains("out of device memory on cuda:0 (Quorum emulated CUDA device (CPU)"), String(line))
      XCTAssert(line.contains("makeTensor(["), String(line))
      XCTAssert(line.contains("at batch size 16: lower the batch size, or train fewer members on this device"), String(line))
    }
    XCTAssertFalse(result.output.contains("local worker local-1 exited"), "the worker must hand tasks back, not die:\n\(result.output)")
    let journal = String(decoding: try FileBytes.read("\(folder)/runs/oom/journal.jsonl"), as: UTF8.self)
    XCTAssertEqual(journal.components(separatedBy: "\"kind\":\"crashed\"").count - 1, 6, "six attempts handed back:\n\(journal)")
  }
}
