import ArgumentParser
import COpenBLAS
import CUDA
import Data
import Files
import Foundation
import NN
import Tensor
import Training
import Wire

/// Micro-benchmarks that print one JSON line each, for the scripts in scripts/bench/.
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure training/inference speed and sgemm throughput (one JSON line).",
    subcommands: [Step.self, Sgemm.self, Augment.self, WireCodec.self, CoordinatorLoad.self])

  struct Step: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Images per second of MobileNetV2 training steps (forward, loss, backward, SGD) or inference on random data (28×28×1 by default).")

    @Option var preset: MobileNetV2Configuration.Preset = .imagenet
    @Option var width: Double = 1.0
    @Option var batch: Int = 128
    @Option var threads: Int = 2
    @Option var warmup: Int = 2
    @Option var steps: Int = 5
    @Option(help: "train or inference") var mode: String = "train"
    @Option(help: ArgumentHelp("The images' size and channels.", valueName: "HxWxC")) var input: String = "28x28x1"
    @Option(help: "cpu, cuda, cuda:N or cuda-emulated.") var device: ComputeDevice = .cpu
    @Flag(inversion: .prefixedNo, help: "On a CUDA device, replay the training step as a CUDA graph recorded after the first step.")
    var cudaGraphs = true

    func run() throws {
      guard ["train", "inference"].contains(mode) else { throw ValidationError("--mode must be train or inference") }
      if device.isSeveralDevices { throw ValidationError("--device \(device): a step runs on one device; name one GPU (cuda:N)") }
      if let problem = device.unavailability() { throw ValidationError("--device \(device): \(problem)") }
      let backend = try device.makeBackend(threads: threads)
      let size = input.split(separator: "x").compactMap { Int($0) }
      guard size.count == 3, size.allSatisfy({ $0 >= 1 }), [1, 3].contains(size[2]) else {
        throw ValidationError("--input must be HxWxC with 1 or 3 channels (96x96x3), got \(input)")
      }
      let configuration = MobileNetV2Configuration(
        preset: preset, width: width, inputChannels: size[2], imageHeight: size[0], imageWidth: size[1])
      var times: [Double] = []
      let measured: (parameters: Int, recorded: Bool)
      if mode == "train" {
        measured = try trainingSteps(configuration, backend: backend, size: size) { times.append($0) }
      } else {
        let model = try MobileNetV2(configuration, capacity: batch, backend: backend, inferenceOnly: true)
        model.initialize(seed: 1)
        let noise = RandomStream(seed: 2, purpose: .augmentation)
        let imageSize = size.reduce(1, *)
        let images = backend.makeTensor(shape: [batch] + size, values: (0..<(batch * imageSize)).map { noise.normal(at: UInt64($0)) })
        try backend.check()
        for step in 0..<(warmup + steps) {
          let start = DispatchTime.now().uptimeNanoseconds
          model.forward(images, batch: batch, training: false)
          // A device returns before its work is done: the step ends when the device is idle.
          backend.synchronize()
          if step >= warmup { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
        }
        measured = (model.parameterCount, false)
      }
      try backend.check()
      let median = times.sorted()[times.count / 2]
      var usage = rusage()
      getrusage(RUSAGE_SELF.rawValue, &usage)
      let record: [String: Any] = [
        "engine": "quorum", "device": backend.name, "preset": preset.rawValue, "width": width, "batch": batch, "threads": threads,
        "layout": "nhwc", "mode": mode, "input": input, "images_per_second": Double(batch) / median, "cuda_graph": measured.recorded,
        "median_step_seconds": median, "step_seconds": times, "peak_rss_bytes": usage.ru_maxrss * 1024,
        "parameters": measured.parameters,
      ]
      print(String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self))
    }

    /// Times the training library's own step (`Trainer.trainStep`: batch assembly, forward,
    /// loss, backward, SGD with Nesterov momentum and weight decay, recorded once and
    /// replayed where the backend records) on random images, without augmentation so that
    /// the peer's step on random tensors compares. Each time ends with the step's loss read
    /// back, so the device is done. Returns the parameter count and whether steps replayed.
    func trainingSteps(
      _ model: MobileNetV2Configuration, backend: Backend, size: [Int], time: (Double) -> Void
    ) throws -> (parameters: Int, recorded: Bool) {
      let noise = RandomStream(seed: 2, purpose: .augmentation)
      let imageSize = size.reduce(1, *)
      let pixels = (0..<(batch * imageSize)).map { UInt8(truncatingIfNeeded: Int(noise.uniform(at: UInt64($0)) * 256)) }
      let images = ImageDataset(
        pixels: pixels, labels: (0..<batch).map { Int32($0 % model.classes) }, height: size[0], width: size[1], channels: size[2],
        classes: model.classes)
      var configuration = TrainingConfiguration(model: model)
      configuration.batchSize = batch
      configuration.epochs = 1
      configuration.augmentation = .none
      let trainer = try Trainer(
        configuration: configuration, data: TrainingData(training: images), backend: backend, threads: threads, outputFolder: nil,
        recordSteps: cudaGraphs)
      let examples = Array(0..<batch)[...]
      for step in 0..<(warmup + steps) {
        let start = DispatchTime.now().uptimeNanoseconds
        _ = trainer.trainStep(examples, epoch: 0, step: step, learningRate: 0.01)
        if step >= warmup { time(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
      }
      try backend.check()
      return (trainer.model.parameterCount, trainer.replayedSteps > 0)
    }
  }

  struct Augment: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Augmented images per second of batch assembly on Fashion-MNIST's 60,000 training images.")

    @Option(help: "reference (shift ±2 + flip), affine (+ rotation 15°, scale 0.1, shear 10°) or full (affine + elastic + erasing)")
    var augmentation: String = "reference"
    @Option var threads: Int = 1
    @Option var batch: Int = 256
    @Option var repeats: Int = 3
    @Option var data: String = "/usr/share/datasets/fashion-mnist"

    func run() throws {
      let recipe: Augmentation
      switch augmentation {
      case "reference": recipe = Augmentation(shift: 2, horizontalFlip: 0.5)
      case "affine": recipe = Augmentation(shift: 2, horizontalFlip: 0.5, rotation: 15, scale: 0.1, shear: 10)
      case "full":
        recipe = Augmentation(shift: 2, horizontalFlip: 0.5, rotation: 15, scale: 0.1, shear: 10, erasing: 0.5, elasticAlpha: 8, elasticSigma: 4)
      default: throw ValidationError("--augmentation must be reference, affine or full")
      }
      let dataset = try ImageDataset.loadIDX(
        images: data + "/train-images-idx3-ubyte.gz", labels: data + "/train-labels-idx1-ubyte.gz")
      let statistics = dataset.channelStatistics()
      let assembler = BatchAssembler(mean: statistics.mean, std: statistics.std, threads: threads)
      let images = Tensor(shape: [batch, dataset.height, dataset.width, dataset.channels])
      let labels = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
      defer { labels.deallocate() }
      let order = Array(0..<dataset.count)
      var rates: [Double] = []
      for epoch in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        for first in stride(from: 0, to: dataset.count, by: batch) {
          assembler.assemble(
            dataset, indices: order[first..<min(first + batch, dataset.count)], augmentation: recipe, seed: 1, epoch: epoch,
            images: images, labels: labels)
        }
        rates.append(Double(dataset.count) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
      }
      let record: [String: Any] = [
        "engine": "quorum", "augmentation": augmentation, "threads": threads,
        "images_per_second": rates.sorted()[rates.count / 2], "images_per_second_per_thread": rates.sorted()[rates.count / 2] / Double(threads),
      ]
      print(String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self))
    }
  }

  struct WireCodec: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "wire", abstract: "Bytes per logit and encode/decode speed of a result message, per precision.")

    @Option(help: "A float32 logits .npy from a run (e.g. test.logits.npy).") var logits: String
    @Option var repeats: Int = 20

    func run() throws {
      let (shape, values) = try NumPy.readFloat32(logits)
      var rows: [[String: Any]] = []
      rows.append([
        "encoding": "float32 raw", "bytes_per_logit": 4.0, "values": values.count,
      ])
      for precision in [WirePrecision.float32, .float16, .bfloat16] {
        let message = Message.result(TaskResult(task: "t", attempt: 1, tensors: [
          WireTensor(name: "logits", shape: shape, values: values, precision: precision),
        ]))
        var encodeTimes: [Double] = [], decodeTimes: [Double] = []
        var frames: [[UInt8]] = []
        for _ in 0..<repeats {
          var start = DispatchTime.now().uptimeNanoseconds
          frames = try Framing.encode(message)
          encodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
          start = DispatchTime.now().uptimeNanoseconds
          _ = try Framing.decode(frames)
          decodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let bytes = frames.dropFirst().reduce(0) { $0 + $1.count }
        let megabytes = Double(values.count * 4) / 1e6
        rows.append([
          "encoding": "\(precision.rawValue) shuffled + LZ4", "bytes_per_logit": Double(bytes) / Double(values.count),
          "values": values.count, "encode_mb_per_s": megabytes / encodeTimes.sorted()[repeats / 2],
          "decode_mb_per_s": megabytes / decodeTimes.sorted()[repeats / 2],
        ])
      }
      for row in rows {
        print(String(decoding: try JSONSerialization.data(withJSONObject: row, options: [.sortedKeys]), as: UTF8.self))
      }
    }
  }

  struct Sgemm: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "sgemm GFLOP/s of the CPU backend's GEMM library for square matrices (median of repeats).")
    @Option var size: Int = 512
    @Option var threads: Int = 2
    // 200 products of 512³ take a quarter of a second: 20 (the old default) took 25 ms,
    // short enough that one burst of a noisy neighbour halved the median (112 against
    // 216–224 GFLOP/s on the same machine, minutes apart).
    @Option var repeats: Int = 200

    func run() throws {
      let backend = CPUBackend(threads: threads)
      let a = Tensor(shape: [size, size]), b = Tensor(shape: [size, size]), c = Tensor(shape: [size, size])
      a.fill(0.5)
      b.fill(0.25)
      var times: [Double] = []
      for _ in 0..<(repeats + 2) {
        let start = DispatchTime.now().uptimeNanoseconds
        backend.gemm(
          transposeA: false, transposeB: false, m: size, n: size, k: size, alpha: 1, a: a.data, lda: size, b: b.data,
          ldb: size, beta: 0, c: c.data, ldc: size)
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
      }
      let median = times.dropFirst(2).sorted()[repeats / 2]
      let record: [String: Any] = [
        "engine": "sgemm", "library": backend.gemmLibrary.rawValue, "size": size, "threads": threads, "gflops": 2 * pow(Double(size), 3) / median / 1e9,
      ]
      print(String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self))
    }
  }
}
