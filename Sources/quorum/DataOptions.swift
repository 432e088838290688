import ArgumentParser
import Files
import Foundation
import Data
import Experiment
import Training

/// Where the examples come from, and how they are split.
struct DataOptions: ParsableArguments {
  static let fashionMNIST = "/usr/share/datasets/fashion-mnist"

  @Option(help: ArgumentHelp(
    "A folder with IDX files named train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-… (MNIST layout).",
    valueName: "folder"))
  var data: String = fashionMNIST

  @Option(help: ArgumentHelp(
    "Training data as a folder of CLASS.npy files (uint8 [n, H·W] or [n, H, W]; Quick, Draw!'s numpy_bitmap layout); overrides --data.",
    valueName: "folder"))
  var classArrays: String?

  @Option(help: "Training data as a CSV (Kaggle layout: --id-column, --label-column) with images in --train-image-folder.")
  var trainCsv: String?
  @Option(help: "The folder of the --train-csv images (ID, ID.png, ID.jpg or ID.jpeg).") var trainImageFolder: String?
  @Option(help: "Training data as class sub-folders: FOLDER/CLASS/*.png|jpg.") var trainFolders: String?
  @Option(help: "A test set as a CSV with images in --test-image-folder; without the label column it is unlabelled (ids kept).")
  var testCsv: String?
  @Option(help: "The folder of the --test-csv images.") var testImageFolder: String?
  @Option(help: "A labelled test set as class sub-folders.") var testFolders: String?
  @Option(help: "An unlabelled test set: a folder of images (ids = file names).") var testImageFolderOnly: String?
  @Option(help: "An unlabelled test set: one uint8 .npy of images (ids = positions).") var testArray: String?
  @Option(help: "CSV column of the image ids.") var idColumn: String = "id"
  @Option(help: "CSV column of the labels (strings or integers).") var labelColumn: String = "label"
  @Option(help: ArgumentHelp("Resize PNG/JPEG images to this size.", valueName: "HxW")) var imageSize: String?
  @Option(help: "Channels of PNG/JPEG inputs: 1 (grey) or 3 (RGB).") var channels: Int = 1
  @Option(help: "Resampling for --image-size: nearest, bilinear or area.") var interpolation: Interpolation = .bilinear

  @Option(help: "Training images (IDX, gzip or not); overrides --data.")
  var trainImages: String?
  @Option(help: "Training labels (IDX).")
  var trainLabels: String?
  @Option(help: "Test images (IDX); by default the t10k files of --data. 'none' for no test set; without --test-labels, an unlabelled set.")
  var testImages: String?
  @Option(help: "Test labels (IDX).")
  var testLabels: String?

  @Option(help: "Validation images (IDX); without them a stratified share of the training set is held out.")
  var validationImages: String?
  @Option(help: "Validation labels (IDX).")
  var validationLabels: String?
  @Option(help: "Share of each training class held out for validation when no validation files are given (0: none).")
  var validationFraction: Double = 0.1

  @Option(help: "Cross-validation: split the training set into this many stratified folds (seeded by --folds-seed) and hold out --fold.")
  var folds: Int?
  @Option(help: "Which fold (0-based) is the validation set.") var fold: Int = 0
  @Option(help: "Seed of the fold assignment (default: --seed); every variant of an experiment should share it.")
  var foldsSeed: UInt64?
  @Option(help: "Reuse this folds.npy (int32 [n], fold of every training example) instead of making one.")
  var foldsFile: String?

  @Option(help: ArgumentHelp(
    "Make the training set long-tailed: class c keeps its first floor(n_max · ratio^(−c/(K−1))) examples (FMNIST-LT-100: 100).",
    valueName: "ratio"))
  var longTailRatio: Double?

  @Option(help: "Number of classes (default: the largest training label + 1).")
  var classes: Int?

  func path(_ explicit: String?, _ stem: String) throws -> String {
    if let explicit { return explicit }
    for name in [stem, stem + ".gz"] {
      let candidate = data + "/" + name
      if FileManager.default.fileExists(atPath: candidate) { return candidate }
    }
    throw DataError(file: data, "holds no \(stem)[.gz]: pass --data FOLDER of IDX files, or the file flags (--train-images …)")
  }

  /// The data source these flags name: the keys of an experiment's `data:` section, so
  /// that `quorum train` and `quorum run` load examples the same way.
  func source() throws -> DataSource {
    var settings = ["channels": String(channels), "interpolation": interpolation.rawValue, "id_column": idColumn, "label_column": labelColumn]
    settings["image_size"] = imageSize
    settings["long_tail_ratio"] = longTailRatio.map { String($0) }
    settings["classes"] = classes.map(String.init)
    var trainsOnIDXFiles = false
    if let classArrays {
      settings["layout"] = "class-arrays"
      settings["train"] = classArrays
    } else if let trainCsv {
      guard let trainImageFolder else { throw ValidationError("--train-csv needs --train-image-folder") }
      settings["layout"] = "csv"
      settings["train"] = trainCsv
      settings["images"] = trainImageFolder
    } else if let trainFolders {
      settings["layout"] = "class-folders"
      settings["train"] = trainFolders
    } else if trainImages != nil || trainLabels != nil {
      // Each file named, the other from --data.
      settings["train"] = try path(trainImages, "train-images-idx3-ubyte")
      settings["train_labels"] = try path(trainLabels, "train-labels-idx1-ubyte")
      trainsOnIDXFiles = true
    } else {
      _ = try path(nil, "train-images-idx3-ubyte")
      settings["train"] = data
    }
    if let testCsv {
      guard let testImageFolder else { throw ValidationError("--test-csv needs --test-image-folder") }
      (settings["test_layout"], settings["test"], settings["test_images"]) = ("csv", testCsv, testImageFolder)
    } else if let testFolders {
      (settings["test_layout"], settings["test"]) = ("class-folders", testFolders)
    } else if let testImageFolderOnly {
      (settings["test_layout"], settings["test"]) = ("image-folder", testImageFolderOnly)
    } else if let testArray {
      (settings["test_layout"], settings["test"]) = ("array", testArray)
    } else if testImages == "none" {
      settings["test"] = "none"
    } else if testImages != nil || testLabels != nil {
      (settings["test_layout"], settings["test"]) = ("idx", try path(testImages, "t10k-images-idx3-ubyte"))
      settings["test_labels"] = testLabels
    } else if trainsOnIDXFiles, (try? path(nil, "t10k-images-idx3-ubyte")) != nil {
      // Named training files take the --data folder's test files, where it has them.
      (settings["test_layout"], settings["test"]) = ("idx", data)
    }
    return DataSource(file: "quorum train", settings: settings)
  }

  /// Loads and splits the data, with one line on what was loaded. The fold assignment and
  /// the label encoding are written to `output` (folds.npy, labels.json), if given.
  func load(seed: UInt64, output: String?, log: (String) -> Void) throws -> TrainingData {
    do { try ImageLoading.checkChannels(channels) } catch let error as DataError { throw ValidationError("--channels \(error.problem)") }
    if let imageSize {
      do { _ = try ImageLoading.size(imageSize) } catch let error as DataError { throw ValidationError("--image-size \(error.problem)") }
    }
    if let longTailRatio, !(longTailRatio.isFinite && longTailRatio >= 1) {
      throw ValidationError("--long-tail-ratio must be at least 1, got \(longTailRatio)")
    }
    let examples = try source().examples()
    var training = examples.training
    for warning in examples.warnings { log("warning: \(warning)") }
    if let encoding = examples.encoding, let output { try encoding.write(to: output + "/labels.json") }
    var validation: ImageDataset?
    if folds != nil || foldsFile != nil {
      let assignment: FoldAssignment
      if let foldsFile {
        assignment = try FoldAssignment.read(foldsFile, examples: training.count)
      } else {
        guard let folds, folds >= 2 else { throw ValidationError("--folds must be at least 2") }
        try FoldAssignment.checkStratifiable(
          classCounts: training.classCounts, folds: folds, source: "--folds \(folds)", classNames: training.classNames)
        assignment = FoldAssignment.stratified(labels: training.labels, classes: training.classes, folds: folds, seed: foldsSeed ?? seed)
      }
      guard (0..<assignment.count).contains(fold) else {
        throw ValidationError("--fold \(fold) is outside 0…\(assignment.count - 1)")
      }
      if let output { try assignment.write(to: output + "/folds.npy") }
      let split = assignment.split(fold)
      log("fold \(fold) of \(assignment.count): \(split.validation.count) validation examples")
      validation = training.subset(split.validation)
      training = training.subset(split.training)
    } else if let validationImages {
      guard let validationLabels else { throw ValidationError("--validation-images needs --validation-labels") }
      validation = try ImageDataset.loadIDX(images: validationImages, labels: validationLabels, classes: training.classes)
    } else if validationFraction > 0 {
      guard validationFraction < 1 else { throw ValidationError("--validation-fraction must be below 1") }
      let split = Split.stratifiedHoldout(labels: training.labels, classes: training.classes, fraction: validationFraction, seed: seed)
      validation = training.subset(split.validation)
      training = training.subset(split.training)
    }
    let test = examples.test
    log("training \(training.count) examples of \(training.height)×\(training.width)×\(training.channels), \(LongTail.histogram(training.classCounts))")
    if let validation { log("validation \(validation.count) examples, \(LongTail.histogram(validation.classCounts))") }
    if let test {
      log(test.isLabelled ? "test \(test.count) examples, \(LongTail.histogram(test.classCounts))" : "test \(test.count) examples (unlabelled)")
    }
    return TrainingData(training: training, validation: validation, test: test)
  }
}

extension Interpolation: ExpressibleByArgument {}
