import Data
import Files
import Foundation
import QuorumTestSupport
import Training
import XCTest

/// `quorum train` as a user runs it: a real process on files the test writes.
final class CommandLineTests: XCTestCase {
  var folder = ""
  override func setUpWithError() throws { folder = try temporaryFolder() }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

  func run(_ arguments: [String]) throws -> (status: Int32, output: String) { try runQuorum(arguments) }

  /// A small learnable IDX data set: class c is a bright c-th row band on noise.
  func writeDataset(_ name: String, count: Int) throws -> (images: String, labels: String) {
    var pixels = [UInt8](repeating: 0, count: count * 28 * 28)
    var labels = [UInt8](repeating: 0, count: count)
    for n in 0..<count {
      let label = n % 4
      labels[n] = UInt8(label)
      for y in 0..<28 {
        for x in 0..<28 {
          let noise = UInt8((n * 7919 + y * 31 + x * 17) % 60)
          pixels[(n * 28 + y) * 28 + x] = (y / 7 == label ? 180 : 0) &+ noise
        }
      }
    }
    let images = folder + "/\(name)-images.idx"
    let labelPath = folder + "/\(name)-labels.idx"
    try FileBytes.writeAtomically(idxBytes(shape: [count, 28, 28], payload: pixels), to: images)
    try FileBytes.writeAtomically(idxBytes(shape: [count], payload: labels), to: labelPath)
    return (images, labelPath)
  }

  /// A small learnable colour IDX set ([n, 32, 32, 3]): class c is a bright band in
  /// colour channel c on noise.
  func writeColourDataset(_ name: String, count: Int) throws -> (images: String, labels: String) {
    let side = 32
    var pixels = [UInt8](repeating: 0, count: count * side * side * 3)
    var labels = [UInt8](repeating: 0, count: count)
    for n in 0..<count {
      let label = n % 3
      labels[n] = UInt8(label)
      for y in 0..<side {
        for x in 0..<side {
          for c in 0..<3 {
            let noise = UInt8((n * 7919 + y * 31 + x * 17 + c * 5) % 60)
            pixels[((n * side + y) * side + x) * 3 + c] = (c == label && (8..<24).contains(y) ? 170 : 20) &+ noise
          }
        }
      }
    }
    let images = folder + "/\(name)-colour-images.idx"
    let labelPath = folder + "/\(name)-colour-labels.idx"
    try FileBytes.writeAtomically(idxBytes(shape: [count, side, side, 3], payload: pixels), to: images)
    try FileBytes.writeAtomically(idxBytes(shape: [count], payload: labels), to: labelPath)
    return (images, labelPath)
  }

  /// Colour photos end to end: a colour IDX set trains with the photo transforms and
  /// ImageNet's normalisation, and a second run fine-tunes from the first's checkpoint with
  /// the body frozen for its first epoch and layer-wise decay; the log says what it took.
  func testColourImagesTrainWithPhotoTransformsAndFineTuneFromACheckpoint() throws {
    let train = try writeColourDataset("train", count: 60)
    let test = try writeColourDataset("test", count: 12)
    let data = ["--train-images", train.images, "--train-labels", train.labels, "--test-images", test.images, "--test-labels", test.labels]
    let common = ["--width", "0.35", "--preset", "cifar", "--batch-size", "16", "--threads", "2", "--progress", "lines"]
    let first = try run(["train"] + data + common + [
      "--epochs", "1", "--output", folder + "/first", "--resized-crop", "0.5", "--brightness", "0.3", "--contrast", "0.3",
      "--saturation", "0.3", "--normalization", "imagenet",
    ])
    XCTAssertEqual(first.status, 0, first.output)
    let checkpoint = try Safetensors.read(folder + "/first/model.safetensors")
    XCTAssertEqual(checkpoint.entry("features.0.0.weight")?.shape.dropFirst(), [3, 3, 3], "a colour stem (torchvision's layout)")
    let second = try run(["train"] + data + common + [
      "--epochs", "2", "--output", folder + "/second", "--initialize-from", folder + "/first/model.safetensors",
      "--freeze", "body:1", "--layer-decay", "0.8", "--normalization", "imagenet",
    ])
    XCTAssertEqual(second.status, 0, second.output)
    XCTAssert(second.output.contains("initialised from \(folder)/first/model.safetensors: took"), second.output)
    XCTAssert(second.output.contains("epoch 2/2"), second.output)
    XCTAssertEqual(try NumPy.readFloat32(folder + "/second/test.logits.npy").shape, [12, 3])
    let bad = try run(["train"] + data + common + ["--epochs", "2", "--output", folder + "/bad", "--freeze", "head:1"])
    XCTAssertNotEqual(bad.status, 0)
    XCTAssert(bad.output.contains("--freeze"), bad.output)
  }

  /// `quorum bench step` runs the training library's step (and inference) and prints one
  /// JSON line: what the speed scripts read.
  func testBenchStepTimesTheTrainersStepAndPrintsOneJSONLine() throws {
    for mode in ["train", "inference"] {
      let result = try run(["bench", "step", "--mode", mode, "--width", "0.35", "--batch", "8", "--warmup", "1", "--steps", "2", "--threads", "1"])
      XCTAssertEqual(result.status, 0, result.output)
      let lines = result.output.split(separator: "\n").filter { $0.hasPrefix("{") }
      XCTAssertEqual(lines.count, 1, result.output)
      let record = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
      XCTAssertEqual(record["mode"] as? String, mode)
      XCTAssertEqual((record["step_seconds"] as? [Double])?.count, 2)
      XCTAssertGreaterThan(record["images_per_second"] as? Double ?? 0, 0)
      XCTAssertEqual(record["parameters"] as? Int, 408_650, "MobileNetV2 at width 0.35, 10 classes")
    }
  }

  func testTrainWritesCheckpointLogitsAndMetrics() throws {
    let train = try writeDataset("train", count: 96)
    let test = try writeDataset("test", count: 20)
    let output = folder + "/run"
    let result = try run([
      "train", "--train-images", train.images, "--train-labels", train.labels, "--test-images", test.images,
      "--test-labels", test.labels, "--width", "0.35", "--epochs", "2", "--batch-size", "16", "--threads", "2",
      "--output", output, "--progress", "lines", "--batching", "ragged", "--step-log", output + "/steps.jsonl", "--save-every", "1",
    ])
    XCTAssertEqual(result.status, 0, result.output)
    XCTAssert(result.output.contains("epoch 2/2"), result.output)
    // 88 training examples cut as PyTorch's DataLoader: five batches of 16 and one of 8.
    let steps = try StepLog.read(output + "/steps.jsonl")
    XCTAssertEqual(steps.map(\.batch), [16, 16, 16, 16, 16, 8, 16, 16, 16, 16, 16, 8])
    XCTAssertEqual(steps.map(\.step), Array(1...12))
    XCTAssert(steps.allSatisfy { $0.gradientNorm > 0 && $0.loss.isFinite && $0.momentum == Double(Float(0.9)) }, "\(steps)")
    for epoch in 1...2 { XCTAssert(FileManager.default.fileExists(atPath: output + "/epoch-\(epoch).safetensors"), "epoch \(epoch)") }
    let testLogits = try NumPy.readFloat32(output + "/test.logits.npy")
    XCTAssertEqual(testLogits.shape, [20, 4])
    XCTAssertEqual(try NumPy.readFloat32(output + "/validation.logits.npy").shape, [8, 4], "round(10 % × 24) = 2 per class held out")
    let metrics = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/metrics.json"))) as? [String: Any])
    XCTAssertEqual((metrics["history"] as? [Any])?.count, 2)
    XCTAssertNotNil((metrics["test"] as? [String: Any])?["balanced_accuracy"])
    XCTAssert(FileManager.default.fileExists(atPath: output + "/model.safetensors"))

    // Resuming a finished run trains nothing more and reproduces the same logits.
    let again = try run([
      "train", "--train-images", train.images, "--train-labels", train.labels, "--test-images", test.images,
      "--test-labels", test.labels, "--width", "0.35", "--epochs", "2", "--batch-size", "16", "--threads", "2",
      "--output", output, "--progress", "none", "--resume", "--batching", "ragged", "--step-log", output + "/steps.jsonl",
    ])
    XCTAssertEqual(again.status, 0, again.output)
    XCTAssertEqual(try NumPy.readFloat32(output + "/test.logits.npy").values, testLogits.values)
    XCTAssertEqual(try StepLog.read(output + "/steps.jsonl"), steps, "the finished epochs' steps are kept")
  }

  /// The same command on the CUDA backend over the emulated device: the whole trainer
  /// (assembly and staging, the step, evaluation, checkpoints and the training state) runs
  /// through a backend whose tensors have no host memory, and a resume of the finished
  /// run reproduces its logits from the state it saved.
  func testTrainOnTheEmulatedCUDADeviceAndResumeIt() throws {
    let train = try writeDataset("train", count: 48)
    let test = try writeDataset("test", count: 12)
    let output = folder + "/cuda"
    let arguments = [
      "train", "--train-images", train.images, "--train-labels", train.labels, "--test-images", test.images, "--test-labels", test.labels,
      "--width", "0.35", "--epochs", "2", "--batch-size", "16", "--threads", "2", "--output", output, "--device", "cuda-emulated",
      "--ema-decay", "0.9", "--clip-norm", "5",
    ]
    let fast = ["QUORUM_EMULATOR_CHECKS": "fast"]
    let result = try runQuorum(arguments + ["--progress", "lines"], environment: fast)
    XCTAssertEqual(result.status, 0, result.output)
    XCTAssert(result.output.contains("on cuda:0 (Quorum emulated CUDA device (CPU), sm_90, float32)"), result.output)
    XCTAssert(result.output.contains("epoch 2/2"), result.output)
    let logits = try NumPy.readFloat32(output + "/test.logits.npy")
    XCTAssertEqual(logits.shape, [12, 4])
    XCTAssert(logits.values.allSatisfy(\.isFinite))
    let metrics = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/metrics.json"))) as? [String: Any])
    XCTAssertEqual(metrics["backend"] as? String, "cuda:0 (Quorum emulated CUDA device (CPU), sm_90, float32)")
    let again = try runQuorum(arguments + ["--progress", "none", "--resume"], environment: fast)
    XCTAssertEqual(again.status, 0, again.output)
    XCTAssertEqual(try NumPy.readFloat32(output + "/test.logits.npy").values, logits.values)
    // A GPU asked for where there is none: refused before any work, with the reason.
    if dlopen("libcuda.so.1", RTLD_NOW) == nil {
      let refused = try runQuorum(["train", "--train-images", train.images, "--train-labels", train.labels, "--device", "cuda:0"])
      XCTAssertEqual(refused.status, 64, refused.output)
      XCTAssert(refused.output.contains("--device cuda:0: the CUDA driver not found") && refused.output.contains("cuda-emulated"), refused.output)
    }
    let misspelt = try runQuorum(["train", "--train-images", train.images, "--train-labels", train.labels, "--device", "gpu"])
    XCTAssertEqual(misspelt.status, 64, misspelt.output)
    let several = try runQuorum(["train", "--train-images", train.images, "--train-labels", train.labels, "--device", "cuda-emulated:all"])
    XCTAssertEqual(several.status, 64, several.output)
    XCTAssert(several.output.contains("quorum train trains one model on one device; name one GPU (cuda:N)"), several.output)
  }

  /// Cross-validation from the command line: the fold assignment lands in the run
  /// folder, another variant reuses it, and the imbalance options are accepted.
  func testFoldsAreWrittenAndReused() throws {
    let train = try writeDataset("train", count: 40)
    let common = ["train", "--train-images", train.images, "--train-labels", train.labels, "--test-images", "none", "--width", "0.35",
      "--epochs", "1", "--batch-size", "8", "--learning-rate", "0.01", "--threads", "2", "--progress", "none"]
    let first = try run(common + ["--folds", "5", "--fold", "2", "--output", folder + "/a"])
    XCTAssertEqual(first.status, 0, first.output)
    let folds = try NumPy.read(folder + "/a/folds.npy")
    XCTAssertEqual(folds.dtype, .int32)
    XCTAssertEqual(folds.shape, [40])
    XCTAssertEqual(try NumPy.readFloat32(folder + "/a/validation.logits.npy").shape, [8, 4], "fold 2 holds 2 of each class")
    let second = try run(common + [
      "--folds-file", folder + "/a/folds.npy", "--fold", "2", "--sampling", "class-balanced", "--class-weights", "effective-number",
      "--reweight-from-epoch", "1", "--logit-adjustment", "1", "--focal-gamma", "1", "--mixup", "0.2", "--cutmix", "1",
      "--rotation", "10", "--erasing", "0.5", "--tta-flips", "--output", folder + "/b",
    ])
    XCTAssertEqual(second.status, 0, second.output)
    XCTAssertEqual(try FileBytes.read(folder + "/b/folds.npy"), try FileBytes.read(folder + "/a/folds.npy"))
    let wrong = try run(common + ["--folds-file", folder + "/a/folds.npy", "--fold", "7", "--output", folder + "/c"])
    XCTAssertNotEqual(wrong.status, 0)
    XCTAssert(wrong.output.contains("--fold 7"), wrong.output)
  }

  func testTrainOnClassArraysAndInspectThem() throws {
    let arrays = folder + "/arrays"
    let train = try writeDataset("train", count: 40)
    let dataset = try ImageDataset.loadIDX(images: train.images, labels: train.labels)
    for c in 0..<4 {
      let members = dataset.labels.indices.filter { dataset.labels[$0] == c }
      try FileBytes.writeAtomically(NumPy.encode(dataset.subset(members).pixels, shape: [members.count, 784]), to: arrays + "/class\(c).npy")
    }
    let inspect = try run(["data", "inspect", arrays])
    XCTAssertEqual(inspect.status, 0, inspect.output)
    XCTAssert(inspect.output.contains("40 images of 28×28×1, 4 classes") && inspect.output.contains("class0, class1"), inspect.output)
    let result = try run([
      "train", "--class-arrays", arrays, "--width", "0.35", "--epochs", "1", "--batch-size", "8", "--learning-rate", "0.01",
      "--threads", "2", "--progress", "none", "--output", folder + "/arrays-run",
    ])
    XCTAssertEqual(result.status, 0, result.output)
    XCTAssertEqual(try NumPy.readFloat32(folder + "/arrays-run/validation.logits.npy").shape, [4, 4])
    try NumPy.write([1, 2], shape: [2], to: arrays + "/broken.npy")
    let broken = try run(["data", "inspect", arrays])
    XCTAssertEqual(broken.status, 1)
    XCTAssert(broken.output.contains("broken.npy") && broken.output.contains("dtype"), broken.output)
  }

  /// The Kaggle layout: string labels, an unlabelled test CSV whose ids come back.
  func testTrainFromCSVAndImagesWithAnUnlabelledTestSet() throws {
    let train = try writeDataset("train", count: 32)
    let dataset = try ImageDataset.loadIDX(images: train.images, labels: train.labels)
    let images = folder + "/images"
    var csv = "file,species\n"
    for n in 0..<dataset.count {
      let pixels = Array(dataset.pixels[(n * 784)..<((n + 1) * 784)])
      try FileBytes.writeAtomically(
        try ImageCodec.encodePNG(DecodedImage(pixels: pixels, height: 28, width: 28, channels: 1)), to: images + "/img\(n).png")
      csv += "img\(n),\(["ant", "bee", "cat", "dog"][Int(dataset.labels[n])])\n"
    }
    try FileBytes.writeAtomically(Array(csv.utf8), to: folder + "/train.csv")
    try FileBytes.writeAtomically(Array("file\nimg3\nimg1\nimg2\n".utf8), to: folder + "/test.csv")
    let output = folder + "/kaggle"
    let result = try run([
      "train", "--train-csv", folder + "/train.csv", "--train-image-folder", images, "--test-csv", folder + "/test.csv",
      "--test-image-folder", images, "--id-column", "file", "--label-column", "species", "--width", "0.35", "--epochs", "1",
      "--batch-size", "8", "--learning-rate", "0.01", "--threads", "2", "--progress", "lines", "--output", output,
    ])
    XCTAssertEqual(result.status, 0, result.output)
    XCTAssert(result.output.contains("test 3 examples (unlabelled)"), result.output)
    XCTAssertEqual(try NumPy.readFloat32(output + "/test.logits.npy").shape, [3, 4])
    XCTAssertEqual(String(decoding: try FileBytes.read(output + "/test.ids.txt"), as: UTF8.self), "img3\nimg1\nimg2\n")
    XCTAssertEqual(try LabelEncoding.read(output + "/labels.json").classes, ["ant", "bee", "cat", "dog"])
    let metrics = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/metrics.json"))) as? [String: Any])
    XCTAssertNil(metrics["test"], "no test scores without test labels")
  }

  func testBadInputFailsWithTheFileAndTheProblem() throws {
    let train = try writeDataset("train", count: 8)
    var bytes = try FileBytes.read(train.images)
    bytes.removeLast(100)
    try FileBytes.writeAtomically(bytes, to: train.images)
    let result = try run(["train", "--train-images", train.images, "--train-labels", train.labels, "--test-images", "none", "--output", folder + "/bad"])
    XCTAssertNotEqual(result.status, 0)
    XCTAssert(result.output.contains("train-images.idx") && result.output.contains("truncated"), result.output)
    XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/bad/model.safetensors"))

    let missing = try run(["train", "--data", folder + "/nowhere", "--output", folder + "/bad"])
    XCTAssertNotEqual(missing.status, 0)
    XCTAssert(missing.output.contains("nowhere"), missing.output)
    // Momentum cycling is one-cycle's and SGD's: other settings are refused, naming the flag.
    let good = try writeDataset("good", count: 8)
    for (extra, problem) in [(["--schedule", "constant"], "needs the one-cycle schedule"), (["--optimizer", "adamw"], "AdamW has no momentum")] {
      let refused = try run(
        ["train", "--train-images", good.images, "--train-labels", good.labels, "--test-images", "none", "--output", folder + "/cycled",
         "--cycle-momentum"] + extra)
      XCTAssertNotEqual(refused.status, 0, refused.output)
      XCTAssert(refused.output.contains("--cycle-momentum") && refused.output.contains(problem), refused.output)
    }
  }

  func testHelpExplainsEveryFlag() throws {
    let help = try run(["train", "--help"])
    XCTAssertEqual(help.status, 0)
    for flag in ["--preset", "--width", "--epochs", "--batch-size", "--optimizer", "--learning-rate", "--schedule", "--weight-decay",
      "--label-smoothing", "--dropout", "--stochastic-depth", "--seed", "--threads", "--output", "--resume", "--early-stopping",
      "--cycle-momentum", "--batching", "--step-log", "--save-every"]
    {
      XCTAssert(help.output.contains(flag), "help lacks \(flag)")
    }
  }
}
