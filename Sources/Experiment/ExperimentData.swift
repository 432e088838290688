import Data
import Foundation

/// The data an experiment names, loaded the same way by the coordinator (for the folds and
/// the final scores) and by every worker.
public struct ExperimentData {
  public var training: ImageDataset
  public var test: ImageDataset?
  public var folds: FoldAssignment
  /// What loading changed that the user may not want (colour files read as grey), for
  /// the coordinator's log.
  public var warnings: [String] = []

  public init(training: ImageDataset, test: ImageDataset?, folds: FoldAssignment, warnings: [String] = []) {
    self.training = training
    self.test = test
    self.folds = folds
    self.warnings = warnings
  }

  public static func load(_ experiment: Experiment) throws -> ExperimentData { try load(DataSource(experiment)) }

  /// The data set of a data source: a worker that reads the paths loads the same one as
  /// the coordinator, from the source its task specification carries.
  public static func load(_ source: DataSource) throws -> ExperimentData {
    func value(_ key: String) -> String? { source.settings[key] }
    func fail(_ problem: String) -> ExperimentError { ExperimentError(file: source.file, line: nil, "data: \(problem)") }
    guard let train = value("train") else { throw fail("no train") }
    let channelsText = value("channels") ?? "1"
    guard let channels = Int(channelsText) else { throw fail("channels must be 1 (grey) or 3 (RGB), got \(channelsText)") }
    do { try ImageLoading.checkChannels(channels) } catch let error as DataError { throw fail("channels \(error.problem)") }
    var loading = ImageLoading(channels: channels)
    if let size = value("image_size") {
      do { loading.size = try ImageLoading.size(size) } catch let error as DataError { throw fail("image_size \(error.problem)") }
    }
    if let interpolation = value("interpolation") {
      guard let chosen = Interpolation(rawValue: interpolation) else { throw fail("interpolation must be nearest, bilinear or area") }
      loading.interpolation = chosen
    }
    var longTailRatio: Double?
    if let text = value("long_tail_ratio") {
      guard let ratio = Double(text), ratio.isFinite, ratio >= 1 else { throw fail("long_tail_ratio must be a number ≥ 1, got \(text)") }
      longTailRatio = ratio
    }
    let layout = value("layout") ?? "idx"
    var training: ImageDataset
    var test: ImageDataset?
    func idx(_ folder: String, _ split: String) throws -> ImageDataset? {
      let files = try Folders.list(folder)
      guard let images = files.first(where: { $0.hasPrefix("\(split)-images-idx3-ubyte") }) else { return nil }
      guard let labels = files.first(where: { $0.hasPrefix("\(split)-labels-idx1-ubyte") }) else {
        return try ImageDataset.loadUnlabelledIDX(images: folder + "/" + images, classes: 0)
      }
      return try ImageDataset.loadIDX(images: folder + "/" + images, labels: folder + "/" + labels)
    }
    switch layout {
    case "idx":
      guard let loaded = try idx(train, "train") else { throw fail("no train-images-idx3-ubyte[.gz] in \(train)") }
      try loaded.checkEveryClassHasExamples(source: train + "/train-labels-idx1-ubyte")
      training = loaded
      test = try idx(value("test") ?? train, "t10k")
    case "class-arrays":
      training = try ImageDataset.loadClassArrays(folder: train)
      test = try value("test").map { try ImageDataset.loadUnlabelledArray($0, classes: training.classes) }
    case "csv":
      guard let images = value("images") else { throw fail("layout csv needs images (the image folder)") }
      let (dataset, encoding) = try ImageDataset.loadCSV(
        csv: train, imageFolder: images, idColumn: value("id_column") ?? "id", labelColumn: value("label_column") ?? "label",
        loading: loading)
      training = dataset
      if let testCSV = value("test") {
        let header = try CSV.parse(String(decoding: try FileBytes.read(testCSV), as: UTF8.self), path: testCSV).first ?? []
        let labelColumn = value("label_column") ?? "label"
        test = try ImageDataset.loadCSV(
          csv: testCSV, imageFolder: value("test_images") ?? images, idColumn: value("id_column") ?? "id",
          labelColumn: header.contains(labelColumn) ? labelColumn : nil, encoding: encoding,
          loading: ImageLoading(size: (training.height, training.width), channels: loading.channels, interpolation: loading.interpolation)
        ).dataset
      }
    case "class-folders":
      let (dataset, encoding) = try ImageDataset.loadClassFolders(train, loading: loading)
      training = dataset
      test = try value("test").map {
        try ImageDataset.loadClassFolders(
          $0, encoding: encoding,
          loading: ImageLoading(size: (training.height, training.width), channels: loading.channels, interpolation: loading.interpolation)
        ).dataset
      }
    default: throw fail("unknown layout \(layout) (idx, class-arrays, csv, class-folders)")
    }
    let warnings = [training.convertedImages.warning(of: training.count, channels: channels)].compactMap { $0 }
    if let ratio = longTailRatio {
      let counts = LongTail.exponential(maximum: training.classCounts.max() ?? 0, ratio: ratio, classes: training.classes)
      training = LongTail.firstPerClass(training, counts: counts)
    }
    if var unlabelled = test, !unlabelled.isLabelled {
      unlabelled = ImageDataset(
        pixels: unlabelled.pixels, labels: unlabelled.labels, height: unlabelled.height, width: unlabelled.width,
        channels: unlabelled.channels, classes: training.classes, classNames: training.classNames)
      unlabelled.ids = test?.ids
      unlabelled.isLabelled = false
      test = unlabelled
    }
    let folds: FoldAssignment
    if let file = source.foldsFile {
      folds = try FoldAssignment.read(file, examples: training.count)
    } else {
      let k = source.foldCount ?? 5
      do {
        try FoldAssignment.checkStratifiable(classCounts: training.classCounts, folds: k, source: "folds.k", classNames: training.classNames)
      } catch let error as DataError { throw ExperimentError(file: source.file, line: nil, "\(error)") }
      folds = FoldAssignment.stratified(
        labels: training.labels, classes: training.classes, folds: k, seed: source.foldSeed)
    }
    return ExperimentData(training: training, test: test, folds: folds, warnings: warnings)
  }
}
