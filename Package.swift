// swift-tools-version:6.0
// Quorum: a distributed ensemble trainer for small-image classifiers.
// The layout follows docs/architecture.md: one concern per target, C libraries behind
// system-library targets, the compute core in Swift.
import PackageDescription
import Foundation

// MARK: - Code generation

// The CPU kernels are written with SIMD vectors; without a target CPU the compiler lowers
// fused multiply-adds to library calls. Haswell (AVX2 + FMA) is on every x86-64 cloud VM
// sold since 2015. Override with QUORUM_TARGET_CPU=native|generic|<llvm cpu name>.
let targetCPU: String? = {
  let requested = ProcessInfo.processInfo.environment["QUORUM_TARGET_CPU"]
  if requested == "generic" { return nil }
  #if arch(x86_64)
    return requested ?? "haswell"
  #else
    return requested
  #endif
}()
let computeSettings: [SwiftSetting] =
  targetCPU.map { [.unsafeFlags(["-target-cpu", $0])] } ?? []

// MARK: - System libraries (Debian -dev packages, found through pkg-config)

let systemLibraries: [Target] = [
  .systemLibrary(
    name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
  // oneDNN ships no pkg-config file; its header and library are on the default paths.
  .systemLibrary(name: "COneDNN", providers: [.apt(["libdnnl-dev"])]),
  .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
  .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
  .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
  .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
  .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
]

// MARK: - Quorum's modules

let modules: [Target] = [
  // Tensors, the Backend interface and the CPU backend.
  .target(name: "Tensor", dependencies: ["COpenBLAS", "COneDNN"], swiftSettings: computeSettings),
  // Layers with explicit forward/backward, MobileNetV2, losses, optimizers, schedules.
  .target(name: "NN", dependencies: ["Tensor"], swiftSettings: computeSettings),
  // Files: their bytes (gzip'd or not, written atomically), folders, NumPy arrays, SHA-256,
  // sizes a header declares, and the error that names a file. No image decoder: the
  // cluster stores results and serves data sets through this alone.
  .target(name: "Files", dependencies: ["CZlib"], swiftSettings: computeSettings),
  // Dataset readers, splits, augmentation, batches.
  .target(name: "Data", dependencies: ["Tensor", "Files", "CZlib", "CPNG", "CTurboJPEG"], swiftSettings: computeSettings),
  // The protocol between coordinator and workers: messages, framing, the LZ4 tensor codec
  // (no sockets: tested without a network).
  .target(name: "Wire", dependencies: ["CLZ4"], swiftSettings: computeSettings),
  // Experiment files: data, folds and a grid of variants, expanded into tasks.
  .target(
    name: "Experiment", dependencies: ["Files", "Training", "Data", "Ensemble", "RunLayout", "Search", .product(name: "Yams", package: "Yams")],
    swiftSettings: computeSettings),
  // The cluster: scheduling, the journal, the coordinator and worker (ZeroMQ).
  .target(name: "Cluster", dependencies: ["Wire", "Files", "CZeroMQ", "RunLayout"], swiftSettings: computeSettings),
  // The coordinator's HTTP status endpoint (JSON, Prometheus) and its client.
  // (Its own small HTTP server: bounded request heads, deadlines, no dependency.)
  .target(name: "Status", dependencies: ["Cluster"]),
  // Combining members: out-of-fold assembly, voting, Caruana selection, NLL-optimal
  // weights, stacking, temperature scaling, the submission and the report.
  // The CUDA backend's loader and kernels: the driver API, NVRTC and cuBLASLt opened with
  // dlopen at run time (nothing CUDA is linked), kernels compiled for the device by NVRTC.
  // The emulated CUDA device: the driver, NVRTC and cuBLASLt stood in for on the CPU,
  // running the same kernel files (compiled as C++ with a prelude of CUDA's built-ins), with
  // checks a GPU does not make. Warnings are errors: every kernel must compile cleanly in
  // both modes (NVRTC's is checked by CUDATests).
  .target(
    name: "CUDAEmulator", dependencies: ["COpenBLAS"],
    cxxSettings: [.unsafeFlags(["-Wall", "-Werror", "-Wno-unknown-pragmas"])]),
  .target(
    name: "CUDA",
    dependencies: ["Files", "CUDAEmulator", "Tensor", "Data"],
    resources: [
      .embedInCode("Kernels/batchnorm_statistics.cu"),
      .embedInCode("Kernels/batchnorm_apply.cu"),
      .embedInCode("Kernels/batchnorm_backward.cu"),
      .embedInCode("Kernels/depthwise.cu"),
      .embedInCode("Kernels/im2col3x3.cu"),
      .embedInCode("Kernels/global_average_pool.cu"),
      .embedInCode("Kernels/residual.cu"),
      .embedInCode("Kernels/dropout.cu"),
      .embedInCode("Kernels/softmax_cross_entropy.cu"),
      .embedInCode("Kernels/optimizer.cu"),
      .embedInCode("Kernels/convert.cu"),
      .embedInCode("Kernels/reduce.cu"),
      .embedInCode("Kernels/training.cu"),
      .embedInCode("Kernels/batch_assembly.cu"),
      .embedInCode("Kernels/launch_rules.cuh"),
      .embedInCode("Kernels/block_reduce.cuh"),
      .embedInCode("Kernels/philox.cuh"),
      .embedInCode("Kernels/bfloat16.cuh"),
      .embedInCode("Kernels/nhwc.cuh"),
    ],
    swiftSettings: computeSettings),
  .target(name: "Ensemble", dependencies: ["Training", "Data", "Tensor", "COpenBLAS"], swiftSettings: computeSettings),
  // The run's outputs: the members read from the run directory, scores.csv, the submission
  // and the submitted ensemble, the HTML report and its plots.
  .target(name: "Report", dependencies: ["Files", "Ensemble", "Training", "Data", "RunLayout"], swiftSettings: computeSettings),
  // Hyper-parameter search: the space and its samplers (grid, random, TPE).
  .target(name: "Search", dependencies: ["Tensor"]),
  // Every path of a run directory.
  .target(name: "RunLayout"),
  // The training loop, checkpoints, metrics.
  .target(name: "Training", dependencies: ["Files", "NN", "Data"], swiftSettings: computeSettings),
  // What runs an experiment: the setup and its phases, the task runner of each role, the
  // run's ensemble and report, a search's trials and rungs, the coordinator's making, the
  // local workers.
  .target(
    name: "Pipeline",
    dependencies: ["Files", "Training", "Wire", "Experiment", "Cluster", "Ensemble", "Report", "CUDA", "RunLayout", "Search", "Data", "NN", "Tensor"],
    swiftSettings: computeSettings),
  // The command line: argument parsing and printing.
  .executableTarget(
    name: "quorum",
    dependencies: [
      "Pipeline", "Training", "Wire", "Experiment", "Cluster", "Status", "Ensemble", "Report", "CUDA", "RunLayout", "Search", "Files",
      .product(name: "ArgumentParser", package: "swift-argument-parser"),
    ],
    swiftSettings: computeSettings),
]

// MARK: - Tests

let tests: [Target] = [
  // Helpers shared by every test target: tolerances, finite differences, temp folders.
  .target(name: "QuorumTestSupport", dependencies: ["Tensor"], path: "Tests/QuorumTestSupport"),
  // Counts heap allocations in the test process (a training step must make none).
  .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
  .testTarget(name: "TensorTests", dependencies: ["Tensor", "QuorumTestSupport"]),
  .testTarget(name: "NNTests", dependencies: ["NN", "QuorumTestSupport"]),
  .testTarget(name: "DataTests", dependencies: ["Files", "Data", "QuorumTestSupport"]),
  .testTarget(name: "WireTests", dependencies: ["Wire"]),
  .testTarget(name: "ClusterTests", dependencies: ["Files", "Cluster", "Wire", "Status", "Data", "CZeroMQ", "QuorumTestSupport"]),
  .testTarget(name: "ExperimentTests", dependencies: ["Files", "Experiment", "Tensor", "Search", "QuorumTestSupport"]),
  // Deliberately broken kernels that the emulator's checks must catch.
  .target(name: "CUDAEmulatorFixtures", dependencies: ["CUDAEmulator"], path: "Tests/CUDAEmulatorFixtures"),
  .testTarget(
    name: "CUDATests",
    dependencies: ["CUDA", "CUDAEmulator", "CUDAEmulatorFixtures", "Tensor", "NN", "Data", "Training", "Wire", "QuorumTestSupport"]),
  .testTarget(name: "EnsembleTests", dependencies: ["Ensemble", "Report", "Data", "QuorumTestSupport"]),
  .testTarget(name: "ReportTests", dependencies: ["Files", "Report", "Ensemble", "Data", "Training", "RunLayout", "QuorumTestSupport"]),
  .testTarget(name: "SearchTests", dependencies: ["Search"]),
  .testTarget(name: "RunLayoutTests", dependencies: ["RunLayout"]),
  // The pipeline in process: each task role, the phases' teachers from stored logits.
  .testTarget(
    name: "PipelineTests",
    dependencies: ["Files", "Pipeline", "Experiment", "Training", "Ensemble", "Report", "Cluster", "Wire", "Data", "RunLayout", "QuorumTestSupport"]),
  .testTarget(
    name: "TrainingTests", dependencies: ["Files", "Training", "QuorumTestSupport", "AllocationCounter"],
    resources: [.copy("Fixtures")]),
  // The whole system as a user runs it: `quorum` processes over real sockets (runs,
  // coordinators and workers killed and restarted, network namespaces, the emulated GPU).
  .testTarget(name: "EndToEndTests", dependencies: ["Files", "Training", "Data", "NN", "Tensor", "Wire", "QuorumTestSupport"]),
]

let package = Package(
  name: "Quorum",
  platforms: [.macOS(.v13)],
  products: [.executable(name: "quorum", targets: ["quorum"])],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
  ],
  targets: systemLibraries + modules + tests,
  swiftLanguageModes: [.v5],
  cxxLanguageStandard: .cxx17
)
