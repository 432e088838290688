import Data
import Files
import Foundation

/// Where an experiment's data comes from and how it is folded: its `data:` section (each
/// key with its value as written) and its folds. All that a worker reading the paths needs
/// to load the data set the coordinator loaded, without the experiment file. `quorum
/// train`'s data flags are spelled as the same keys, so both load through `examples()`.
public struct DataSource: Codable, Equatable, Sendable {
  /// The experiment file (or the command), named in every error.
  public var file: String
  public var settings: [String: String]
  /// A fold assignment file (folds.file), else `foldCount` stratified folds by `foldSeed`.
  public var foldsFile: String?
  public var foldCount: Int?
  public var foldSeed: UInt64

  /// The keys of a data source (an experiment's `data:` section).
  public static let keys: Set<String> = [
    "train", "train_labels", "layout", "test", "test_labels", "test_layout", "images", "test_images", "id_column", "label_column",
    "long_tail_ratio", "classes", "image_size", "channels", "interpolation", "data_access",
  ]
  public static let layouts = ["idx", "class-arrays", "csv", "class-folders"]
  public static let testLayouts = ["idx", "array", "csv", "class-folders", "image-folder"]

  public init(file: String, settings: [String: String], foldsFile: String? = nil, foldCount: Int? = nil, foldSeed: UInt64 = 0) {
    self.file = file
    self.settings = settings
    self.foldsFile = foldsFile
    self.foldCount = foldCount
    self.foldSeed = foldSeed
  }

  public init(_ experiment: Experiment) {
    var settings: [String: String] = [:]
    // The first of a key counts, as the experiment's own lookups do.
    for (key, value) in experiment.data where settings[key] == nil { settings[key] = "\(value)" }
    self.init(
      file: experiment.file, settings: settings, foldsFile: experiment.foldsFile, foldCount: experiment.foldCount,
      foldSeed: experiment.foldSeed)
  }

  /// The examples this source names, before any split: the training set (long-tailed
  /// where `long_tail_ratio` says), the test set if any, the labels' encoding where the
  /// labels are names, and what loading changed that the user may not want.
  public func examples() throws -> Examples {
    func value(_ key: String) -> String? { settings[key] }
    func fail(_ problem: String) -> ExperimentError { ExperimentError(file: file, line: nil, "data: \(problem)") }
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
    var classes: Int?
    if let text = value("classes") {
      guard let count = Int(text), count >= 2 else { throw fail("classes must be a whole number ≥ 2, got \(text)") }
      classes = count
    }
    let idColumn = value("id_column") ?? "id", labelColumn = value("label_column") ?? "label"

    // The training set.
    let layout = value("layout") ?? "idx"
    var training: ImageDataset
    var encoding: LabelEncoding?
    switch layout {
    case "idx":
      guard let files = try IDXFiles(train, split: "train", labels: value("train_labels")) else {
        throw DataError(file: train, "holds no train-images-idx3-ubyte[.gz]")
      }
      guard let labels = files.labels else { throw fail("\(train) has no train-labels-idx1-ubyte[.gz]; name the labels (train_labels)") }
      training = try ImageDataset.loadIDX(images: files.images, labels: labels, classes: classes)
      if classes == nil { try training.checkEveryClassHasExamples(source: labels) }
    case "class-arrays":
      training = try ImageDataset.loadClassArrays(folder: train)
    case "csv":
      guard let images = value("images") else { throw fail("layout csv needs images (the image folder)") }
      (training, encoding) = try ImageDataset.loadCSV(
        csv: train, imageFolder: images, idColumn: idColumn, labelColumn: labelColumn, loading: loading)
    case "class-folders":
      (training, encoding) = try ImageDataset.loadClassFolders(train, loading: loading)
    default: throw fail("unknown layout \(layout) (\(Self.layouts.joined(separator: ", ")))")
    }
    let warnings = [training.convertedImages.warning(of: training.count, channels: channels)].compactMap { $0 }
    if let ratio = longTailRatio {
      let counts = LongTail.exponential(maximum: training.classCounts.max() ?? 0, ratio: ratio, classes: training.classes)
      training = LongTail.firstPerClass(training, counts: counts)
    }

    // The test set: in the training set's layout unless test_layout says otherwise, read at
    // the training images' size, its labels in the training set's encoding.
    let testLoading = ImageLoading(size: (training.height, training.width), channels: loading.channels, interpolation: loading.interpolation)
    let trainEncoding = encoding ?? LabelEncoding(classes: training.classNames ?? (0..<training.classes).map(String.init))
    let testLayout = value("test_layout") ?? (layout == "class-arrays" ? "array" : layout)
    var test: ImageDataset?
    switch (value("test"), testLayout) {
    case ("none", _): test = nil
    case (nil, "idx") where layout == "idx" && Folders.isFolder(train):
      // An IDX folder's own t10k files, where it has them.
      test = try IDXFiles(train, split: "t10k", labels: nil).map { try Self.idx($0, classes: training.classes) }
    case (nil, _): test = nil
    case (let path?, "idx"):
      guard let files = try IDXFiles(path, split: "t10k", labels: value("test_labels")) else {
        throw DataError(file: path, "holds no t10k-images-idx3-ubyte[.gz]")
      }
      test = try Self.idx(files, classes: training.classes)
    case (let path?, "array"): test = try ImageDataset.loadUnlabelledArray(path, classes: training.classes)
    case (let path?, "csv"):
      guard let images = value("test_images") ?? value("images") else { throw fail("a csv test set needs test_images (its image folder)") }
      let header = try CSV.parse(String(decoding: try FileBytes.read(path), as: UTF8.self), path: path).first ?? []
      test = try ImageDataset.loadCSV(
        csv: path, imageFolder: images, idColumn: idColumn, labelColumn: header.contains(labelColumn) ? labelColumn : nil,
        encoding: trainEncoding, loading: testLoading
      ).dataset
    case (let path?, "class-folders"): test = try ImageDataset.loadClassFolders(path, encoding: trainEncoding, loading: testLoading).dataset
    case (let path?, "image-folder"): test = try ImageDataset.loadImageFolder(path, classes: training.classes, loading: testLoading)
    default: throw fail("unknown test_layout \(testLayout) (\(Self.testLayouts.joined(separator: ", ")))")
    }
    if var unlabelled = test, !unlabelled.isLabelled {
      // An unlabelled set scores nothing, but its logits have the training set's classes.
      unlabelled = ImageDataset(
        pixels: unlabelled.pixels, labels: unlabelled.labels, height: unlabelled.height, width: unlabelled.width,
        channels: unlabelled.channels, classes: training.classes, classNames: training.classNames)
      unlabelled.ids = test?.ids
      unlabelled.isLabelled = false
      test = unlabelled
    }
    return Examples(training: training, test: test, encoding: encoding, warnings: warnings)
  }

  /// An IDX set: a folder's `SPLIT-images-idx3-ubyte[.gz]` file and its labels (nil where
  /// the folder has no such images), or an images file and its labels, if named.
  struct IDXFiles {
    var images: String
    var labels: String?

    init?(_ path: String, split: String, labels: String?) throws {
      guard Folders.isFolder(path) else {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError(file: path, "does not exist") }
        images = path
        self.labels = labels
        return
      }
      let names = try Folders.list(path)
      guard let images = names.first(where: { $0.hasPrefix("\(split)-images-idx3-ubyte") }) else { return nil }
      self.images = path + "/" + images
      self.labels = labels ?? names.first { $0.hasPrefix("\(split)-labels-idx1-ubyte") }.map { path + "/" + $0 }
    }
  }

  /// A test set of IDX files: labelled where it has labels.
  static func idx(_ files: IDXFiles, classes: Int) throws -> ImageDataset {
    guard let labels = files.labels else { return try ImageDataset.loadUnlabelledIDX(images: files.images, classes: classes) }
    return try ImageDataset.loadIDX(images: files.images, labels: labels, classes: classes)
  }
}

/// The examples of a data source, before any split.
public struct Examples {
  public var training: ImageDataset
  public var test: ImageDataset?
  /// The labels' encoding where they are names (CSV, class folders), for labels.json.
  public var encoding: LabelEncoding?
  /// What loading changed that the user may not want (colour files read as grey).
  public var warnings: [String]
}
