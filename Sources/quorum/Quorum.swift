import ArgumentParser
import Foundation
import Pipeline
import Tensor

@main
struct Quorum: ParsableCommand {
  static let version = Release.version

  static let configuration = CommandConfiguration(
    commandName: "quorum",
    abstract: "Train k-fold ensembles of MobileNetV2 on small images.",
    version: version,
    subcommands: [
      Run.self, Train.self, Plan.self, CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self, Keys.self, Doctor.self,
      ReportCommand.self, PredictCommand.self, DataCommand.self, SearchCommand.self,
      Bench.self,
    ])

  static func main() {
    // Before anything runs: OpenBLAS may have picked kernels below this CPU (BLASCore).
    BLASCore.restartWithBetterCoreIfNeeded()
    do {
      _ = try GEMMLibrary.choice(environment: ProcessInfo.processInfo.environment)
    } catch {
      FileHandle.standardError.write(Data("error: \(error)\n".utf8))
      Foundation.exit(2)
    }
    main(nil)
  }
}
