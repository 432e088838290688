import ArgumentParser
import CUDA
import CLZ4
import COneDNN
import COpenBLAS
import CZeroMQ
import Cluster
import Foundation
import Status
import Tensor

/// Checks a machine for what a worker needs and says what to fix.
struct Doctor: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check this machine for a worker's needs: libraries, CUDA driver, GPU memory, clock, keys, the coordinator.",
    discussion: """
      Exit status: 0 when every check passes (warnings allowed); 1 when a check fails (the \
      line says what to fix); 64 on a usage error. With --device auto (the default) or cuda, \
      a machine without a usable GPU fails the GPU check; --device cpu checks a CPU worker.
      """)

  @Option(help: "The device the worker will use: auto, cpu, cuda, cuda:N, cuda:all or cuda-emulated (:N, :all).") var device: ComputeDevice = .automatic
  @Option(help: "The coordinator's endpoint, to test the connection and handshake.") var connect: String?
  @Option(help: "This worker's secret key file.") var key: String?
  @Option(help: "The coordinator's public key file.") var serverKey: String?
  @Option(help: "The coordinator's status endpoint (http://HOST:8750), to compare clocks.") var status: String?
  // For scripts/test.sh: the tests run in XCTest's process, which cannot restart itself
  // before OpenBLAS initialises as quorum does, so the script names this core for them.
  @Flag(help: .hidden) var blasCore = false

  func validate() throws {
    if (key == nil) != (serverKey == nil) { throw ValidationError("--key and --server-key go together") }
  }

  enum Outcome: String { case ok = "ok", warning = "warning", failed = "FAILED", skipped = "skipped" }

  func run() throws {
    if blasCore { return print(BLASCore.current) }
    var failures = 0
    func report(_ outcome: Outcome, _ check: String, _ detail: String) {
      if outcome == .failed { failures += 1 }
      print("\(outcome.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(check.padding(toLength: 12, withPad: " ", startingAt: 0)) \(detail)")
    }

    // Libraries: the binary started, so they load; their versions and CURVE support.
    var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    let curve = zmq_has("curve") != 0
    report(curve ? .ok : .failed, "libzmq", "\(major).\(minor).\(patch)\(curve ? ", CURVE available" : ": built without CURVE (libsodium); install Debian's libzmq5")")
    report(.ok, "liblz4", String(cString: LZ4_versionString()))
    // OpenBLAS multiplies for the stacking MLP, and for training where oneDNN has no fast
    // kernels.
    let blas = BLASCore.summary()
    report(
      blas.weakerThanTheCPUAllows ? .warning : .ok, "OpenBLAS",
      String(cString: openblas_get_config()).trimmingCharacters(in: .whitespaces) + ": " + blas.line)
    let onednn = dnnl_version().pointee
    report(.ok, "oneDNN", "\(onednn.major).\(onednn.minor).\(onednn.patch), \(GEMMLibrary.oneDNNInstructions) kernels on this CPU")
    let kernels = GEMMLibrary.summary()
    report(kernels.weakerThanTheCPUAllows ? .warning : .ok, "GEMM", kernels.line)

    // CUDA driver and GPUs: the emulated device's go through the same checks, by its
    // stand-in driver and NVRTC.
    let memoryNeeded = 4 << 30
    if device == .cpu {
      report(.skipped, "CUDA driver", "--device cpu")
    } else {
      let emulated = device.isEmulated
      // NVRTC and cuBLASLt load without a driver or a GPU: what an image or a machine
      // brings of CUDA is checked before the GPU is there.
      if !emulated {
        do {
          let nvrtc = try NVRTC()
          let blas = try CUBLASLt.probe()
          let blasVersion = "\(blas.version / 10000).\(blas.version / 100 % 100).\(blas.version % 100)"
          report(
            .ok, "CUDA libs",
            "NVRTC \(nvrtc.version.major).\(nvrtc.version.minor) (\(nvrtc.library.path)), cuBLASLt \(blasVersion) (\(blas.library.path))")
        } catch {
          report(.failed, "CUDA libs", "\(error)")
        }
      }
      do {
        let driver = try emulated ? CUDADriverAPI.emulated() : CUDADriverAPI()
        let version = try driver.driverVersion()
        report(.ok, "CUDA driver", "supports CUDA \(version / 1000).\(version % 1000 / 10) (\(driver.library.path))")
        let gpus = try driver.gpus()
        var wanted: Int?
        if case .cuda(let ordinal, _) = device { wanted = ordinal }
        let prefix = emulated ? "cuda-emulated" : "cuda"
        if gpus.isEmpty {
          report(.failed, "GPU", "none usable: the driver sees no GPU. A worker here would train on the CPU: run it with --device cpu")
        } else if let wanted, !gpus.contains(where: { $0.index == wanted }) {
          report(.failed, "GPU", "no device \(wanted): this machine has \(gpus.count) (\(prefix):0…\(prefix):\(gpus.count - 1))")
        }
        let used = gpus.filter { wanted == nil || $0.index == wanted }
        for gpu in used {
          let gib = Double(gpu.memoryBytes) / Double(1 << 30)
          report(gpu.memoryBytes >= memoryNeeded ? .ok : .warning, "GPU \(gpu.index)",
            String(format: "%@ (%@), %.1f GiB%@", gpu.name, gpu.architecture, gib, gpu.memoryBytes >= memoryNeeded ? "" : " (under 4 GiB: use smaller batches or widths)"))
        }
        if used.count > 1 { report(.ok, "GPUs", "--device \(prefix):all serves these \(used.count) from one worker, each with its own tasks") }
        // Compiling the kernels for this machine's GPUs fills the cache a worker starts from.
        do {
          let compiler = KernelCompiler(nvrtc: try emulated ? NVRTC.emulated() : NVRTC())
          if let problem = compiler.cacheFolderProblem() { report(.warning, "kernel cache", problem) }
          let architectures = Array(Set(gpus.map(\.architecture))).sorted()
          for architecture in architectures { for source in KernelSources.all { _ = try compiler.cubin(source, architecture: architecture) } }
          report(.ok, "CUDA kernels", "\(KernelSources.all.count) compiled for \(architectures.joined(separator: ", ")) by NVRTC \(compiler.nvrtc.version.major).\(compiler.nvrtc.version.minor) (\(compiler.nvrtc.library.path); cache \(compiler.cacheFolder ?? "off"))")
          // What a worker does as it starts, on each GPU it would use: the context, a
          // stream, every kernel module loaded, cuBLASLt.
          for gpu in used {
            do {
              let backend = try ComputeDevice.cuda(ordinal: gpu.index, emulated: emulated).makeBackend(threads: 1)
              report(.ok, "backend \(gpu.index)", "\(backend.name) starts: \(KernelSources.all.count) kernel files loaded")
            } catch {
              report(.failed, "backend \(gpu.index)", "\(error)")
            }
          }
        } catch {
          report(.failed, "CUDA kernels", "\(error)")
        }
        report(
          .warning, "CUDA backend",
          emulated
            ? "the emulated device runs the kernels on the CPU, with its checks: for checking, not for speed"
            : device == .automatic
              ? "--device auto trains on the CPU: the CUDA backend is proven on the emulated device, not yet measured on a GPU; --device cuda:N uses it (docs/cuda.md)"
              : "proven on the emulated device, not yet measured on a GPU (docs/cuda.md)")
      } catch {
        report(.failed, "GPU", "none usable: \(error). A worker here would train on the CPU: run it with --device cpu, or install the NVIDIA driver")
      }
    }

    // Memory and disk.
    let memory = Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)
    report(memory >= 4 ? .ok : .warning, "memory", String(format: "%.1f GiB%@", memory, memory >= 4 ? "" : " (under 4 GiB: the data set and a batch may not fit)"))
    var disk = statvfs()
    if statvfs(FileManager.default.currentDirectoryPath, &disk) == 0 {
      let free = Double(disk.f_bavail) * Double(disk.f_frsize) / Double(1 << 30)
      report(free >= 2 ? .ok : .warning, "disk", String(format: "%.1f GiB free in %@", free, FileManager.default.currentDirectoryPath))
    }

    // Keys.
    var security: Worker.Security?
    if let key, let serverKey {
      do {
        let keys = try CurveKeys.read(secretKeyFile: key)
        let exposure = CurveKeys.exposure(ofSecretKeyFile: key)
        report(exposure == nil ? .ok : .warning, "key", "\(key): public key \(keys.publicKey)\(exposure.map { "; \($0)" } ?? "")")
        let server = try CurveKeys.read(publicKeyFile: serverKey)
        report(.ok, "server key", "\(serverKey): \(server)")
        security = Worker.Security(keys: keys, serverPublicKey: server)
      } catch {
        report(.failed, "keys", "\(error)")
      }
    } else {
      report(.skipped, "keys", "no --key/--server-key: plain TCP, loopback only")
    }

    // The coordinator: a real handshake.
    if let connect {
      if key != nil && security == nil {
        report(.skipped, "coordinator", "the keys did not load")
      } else {
        switch ConnectionProbe.check(endpoint: connect, security: security) {
        case .admitted(let seconds):
          report(.ok, "coordinator", String(format: "%@ admits this worker (%@handshake in %.0f ms)", connect, security == nil ? "plain TCP, " : "CURVE ", seconds * 1000))
        case .refused(let reason): report(.failed, "coordinator", reason)
        case .unreachable(let reason): report(.failed, "coordinator", reason)
        }
      }
    } else {
      report(.skipped, "coordinator", "no --connect")
    }

    // Clocks: the coordinator's status carries its time.
    if let status {
      do {
        let sent = Date().timeIntervalSince1970
        let remote = try StatusClient.status(status)
        let received = Date().timeIntervalSince1970
        let skew = (sent + received) / 2 - remote.time
        // Snapshots are up to a quarter-second old: skews under a second are noise.
        report(abs(skew) < 2 ? .ok : .warning, "clock", String(format: "%+.1f s against the coordinator%@", skew, abs(skew) < 2 ? "" : " (run an NTP client, e.g. systemd-timesyncd or chrony)"))
      } catch {
        report(.failed, "clock", "\(error)")
      }
    } else {
      report(.skipped, "clock", "no --status (the coordinator's status endpoint) to compare with")
    }

    print(failures == 0 ? "doctor: ready" : "doctor: \(failures) check\(failures == 1 ? "" : "s") failed")
    if failures > 0 { throw ExitCode(1) }
  }
}
