import ArgumentParser
import Experiment

struct Plan: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print an experiment's variants and tasks without running anything.",
    discussion: "FILE is an experiment in YAML (docs/experiments.md). A bad file is reported with the key and line.")

  @Argument(help: "The experiment file.") var file: String

  func run() throws {
    let experiment = try Experiment.read(file)
    print("experiment \(experiment.name): run directory \(experiment.runDirectory), device \(experiment.device)")
    print("data: " + experiment.data.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    let folds = experiment.foldsFile.map { "from \($0)" } ?? "stratified, seed \(experiment.foldSeed)"
    print("folds: \(experiment.foldCount.map(String.init) ?? "?") (\(folds))")
    if let search = experiment.search {
      let halving = search.halving.map { ", successive halving at epochs " + $0.rungs.map(String.init).joined(separator: ", ") } ?? ""
      print("search: \(search.trials) trials (\(search.sampler.rawValue), seed \(search.seed), \(search.scheduleDescription), "
        + "\(search.epochs.map { "\($0) epochs" } ?? "the training epochs") each\(halving)) on \(search.foldsDescription), scored by \(search.metric.spelling), over:")
      for (name, distribution) in search.space.parameters { print("  \(name): \(distribution)") }
      print("its best \(search.best) become the members below (their settings the defaults until it has chosen):")
    }
    print("\(experiment.variants.count) variant\(experiment.variants.count == 1 ? "" : "s"):")
    for variant in experiment.variants {
      print("  \(variant.name): " + variant.settings.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
    let tasks = experiment.tasks
    print("\(tasks.count) tasks:")
    for task in tasks { print("  \(task.id)") }
  }
}
