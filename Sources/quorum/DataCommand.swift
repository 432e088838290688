import ArgumentParser
import Data
import Files
import Foundation

/// `quorum data …`: look at data before training on it.
struct DataCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "data", abstract: "Inspect data sets.", subcommands: [Inspect.self])

  struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print the layout, examples per class, image size and problems of a data set.",
      discussion: """
        PATH is an MNIST-layout folder (train-/t10k- IDX files, gzip or not), a folder of \
        CLASS.npy files, an IDX image file (its labels file is looked for beside it) or a \
        CLASS.npy file. Exits with 1 when a problem is found.
        """)

    @Argument(help: "The folder or file to inspect.") var path: String
    @Option(help: "For a CSV: the folder of its images.") var images: String?
    @Option(help: "For a CSV: the id column.") var idColumn: String = "id"
    @Option(help: "For a CSV: the label column (absent: an unlabelled set).") var labelColumn: String = "label"
    @Option(help: "Check that stratified k-fold with this many folds can be made (every class at least k examples).")
    var folds: Int = 5
    @Option(help: "Channels PNG/JPEG images are read with, as quorum train's --channels: 1 (grey) or 3 (RGB).")
    var channels: Int = 1

    func validate() throws {
      do { try ImageLoading.checkChannels(channels) } catch let error as DataError { throw ValidationError("--channels \(error.problem)") }
    }

    func run() throws {
      var problems: [String] = []
      func report(_ role: String, _ load: () throws -> ImageDataset) {
        do {
          let dataset = try load()
          if let warning = dataset.convertedImages.warning(of: dataset.count, channels: channels) { print("\(role): warning: \(warning)") }
          guard dataset.isLabelled else {
            print("\(role): \(dataset.count) unlabelled images of \(dataset.height)×\(dataset.width)×\(dataset.channels)")
            return
          }
          print("\(role): \(dataset.count) images of \(dataset.height)×\(dataset.width)×\(dataset.channels), \(dataset.classes) classes")
          print("  \(LongTail.histogram(dataset.classCounts))")
          if let names = dataset.classNames { print("  classes: \(names.joined(separator: ", "))") }
          let empty = dataset.classCounts.enumerated().filter { $0.element == 0 }.map { String($0.offset) }
          if !empty.isEmpty { problems.append("\(role): classes without examples: \(empty.joined(separator: ", "))") }
          // What quorum train and quorum run refuse: a class smaller than the folds.
          if role != "t10k", empty.isEmpty {
            do { try FoldAssignment.checkStratifiable(classCounts: dataset.classCounts, folds: folds, source: "\(role) with \(folds) folds", classNames: dataset.classNames) } catch {
              problems.append("\(error)")
            }
          }
        } catch {
          problems.append("\(error)")
        }
      }
      var isFolder: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
        throw ValidationError("\(path): no such file or folder")
      }
      let files = isFolder.boolValue ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []) : []
      if isFolder.boolValue && files.contains(where: { $0.hasPrefix("train-images-idx3-ubyte") }) {
        print("layout: MNIST-style IDX folder")
        for split in ["train", "t10k"] {
          guard let images = files.first(where: { $0.hasPrefix("\(split)-images-idx3-ubyte") }) else { continue }
          let labels = files.first(where: { $0.hasPrefix("\(split)-labels-idx1-ubyte") })
          report(split) {
            guard let labels else { throw DataError(file: path + "/" + images, "has no \(split)-labels-idx1-ubyte beside it") }
            return try ImageDataset.loadIDX(images: path + "/" + images, labels: path + "/" + labels)
          }
        }
      } else if isFolder.boolValue && files.contains(where: { $0.hasSuffix(".npy") }) {
        print("layout: one CLASS.npy per class (numpy_bitmap)")
        report("train") { try ImageDataset.loadClassArrays(folder: path) }
      } else if path.hasSuffix(".csv") {
        print("layout: CSV + image folder")
        report("data") {
          guard let images else { throw ValidationError("a CSV needs --images FOLDER") }
          let header = try CSV.parse(String(decoding: try FileBytes.read(path), as: UTF8.self), path: path).first ?? []
          let dataset = try ImageDataset.loadCSV(
            csv: path, imageFolder: images, idColumn: idColumn, labelColumn: header.contains(labelColumn) ? labelColumn : nil,
            loading: ImageLoading(channels: channels)).dataset
          if !dataset.isLabelled { print("unlabelled: \(dataset.count) ids") }
          return dataset
        }
      } else if isFolder.boolValue && files.contains(where: { name in
        var sub: ObjCBool = false
        return FileManager.default.fileExists(atPath: path + "/" + name, isDirectory: &sub) && sub.boolValue
      }) {
        print("layout: class sub-folders")
        report("data") { try ImageDataset.loadClassFolders(path, loading: ImageLoading(channels: channels)).dataset }
      } else if path.hasSuffix(".npy") {
        print("layout: one class array")
        let (dtype, shape, _) = try NumPy.read(path)
        print("array: \(dtype.rawValue) \(shape)")
        if dtype != .uint8 { problems.append("\(path): dtype \(dtype.rawValue), expected |u1") }
      } else if !isFolder.boolValue {
        print("layout: IDX file")
        let labels = path.replacingOccurrences(of: "images-idx3", with: "labels-idx1")
        report("data") { try ImageDataset.loadIDX(images: path, labels: labels) }
      } else {
        problems.append("\(path): neither IDX files (train-images-idx3-ubyte…) nor CLASS.npy files")
      }
      if problems.isEmpty {
        print("problems: none")
      } else {
        print("problems:")
        for problem in problems { print("  \(problem)") }
        throw ExitCode(1)
      }
    }
  }
}
