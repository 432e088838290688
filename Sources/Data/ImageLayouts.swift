import Files
import Foundation

/// How image files become model inputs.
public struct ImageLoading: Sendable {
  /// Resize every image to height × width (nil: all images must have one size).
  public var size: (height: Int, width: Int)?
  /// 1 (grey) or 3 (RGB).
  public var channels: Int
  public var interpolation: Interpolation

  public init(size: (height: Int, width: Int)? = nil, channels: Int = 1, interpolation: Interpolation = .bilinear) {
    self.size = size
    self.channels = channels
    self.interpolation = interpolation
  }

  /// The largest side an image may be resized to: 16× a 256-pixel crop, and within the
  /// decoder's pixel bound.
  public static let maximumSide = 4096

  /// "HxW" as a resize target, or why it is not one.
  public static func size(_ text: String) throws -> (height: Int, width: Int) {
    let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
    guard parts.count == 2, let height = parts[0], let width = parts[1] else {
      throw DataError(file: "image size", "must look like 28x28 (height x width), got \"\(text)\"")
    }
    guard (1...maximumSide).contains(height), (1...maximumSide).contains(width) else {
      throw DataError(file: "image size", "sides must be 1…\(maximumSide) pixels, got \(text)")
    }
    return (height, width)
  }

  /// Checks the channel count: 1 (grey) or 3 (RGB).
  public static func checkChannels(_ channels: Int) throws {
    guard channels == 1 || channels == 3 else { throw DataError(file: "channels", "must be 1 (grey) or 3 (RGB), got \(channels)") }
  }
}

/// The mapping from label strings to class indices, saved with a run (labels.json) so
/// that test sets and later runs use the same indices. Labels that are all integers are
/// ordered numerically ("2" before "10"), others by string.
public struct LabelEncoding: Codable, Equatable, Sendable {
  public var classes: [String]

  public init(classes: [String]) { self.classes = classes }

  public init(labels: some Sequence<String>) {
    let unique = Set(labels)
    if unique.allSatisfy({ Int($0) != nil }) {
      classes = unique.sorted { Int($0)! < Int($1)! }
    } else {
      classes = unique.sorted()
    }
  }

  public func index(of label: String) -> Int? { classes.firstIndex(of: label) }

  public func write(to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted]
    try FileBytes.writeAtomically([UInt8](try encoder.encode(self)), to: path)
  }

  public static func read(_ path: String) throws -> LabelEncoding {
    do { return try JSONDecoder().decode(LabelEncoding.self, from: Data(try FileBytes.read(path))) } catch let error as DataError {
      throw error
    } catch {
      throw DataError(file: path, "is not a label encoding ({\"classes\": [...]}): \(error)")
    }
  }
}

extension ImageDataset {
  /// The Kaggle layout: a CSV with an id column (and a label column for labelled sets)
  /// and an image per id in `imageFolder` (ID, ID.png, ID.jpg or ID.jpeg). With an
  /// `encoding`, labels must belong to it (a test set); without, it is built from the
  /// labels. `labelColumn` nil reads an unlabelled set (labels 0, ids kept). Nothing is
  /// returned unless every row loads.
  public static func loadCSV(
    csv: String, imageFolder: String, idColumn: String = "id", labelColumn: String? = "label",
    encoding: LabelEncoding? = nil, loading: ImageLoading = ImageLoading()
  ) throws -> (dataset: ImageDataset, encoding: LabelEncoding) {
    let bytes = try FileBytes.read(csv)
    guard let text = String(validating: bytes, as: UTF8.self) else {
      let line = 1 + (String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .firstIndex { $0.contains("\u{FFFD}") } ?? 0)
      throw DataError(file: csv, "line \(line) is not valid UTF-8: save the file as UTF-8")
    }
    let rows = try CSV.parse(text, path: csv)
    guard let header = rows.first else { throw DataError(file: csv, "is empty") }
    func column(_ name: String) throws -> Int {
      guard let index = header.firstIndex(of: name) else {
        throw DataError(file: csv, "has no column \"\(name)\" (columns: \(header.joined(separator: ", ")))")
      }
      return index
    }
    let idIndex = try column(idColumn)
    let labelIndex = try labelColumn.map(column)
    var ids: [String] = []
    var labelTexts: [String] = []
    var rowOfId: [String: Int] = [:]
    for (offset, row) in rows.dropFirst().enumerated() {
      let line = offset + 2
      if row.count == 1 && row[0].isEmpty { continue }
      guard row.count == header.count else {
        throw DataError(file: csv, "row \(line) has \(row.count) fields, the header \(header.count)")
      }
      let id = row[idIndex]
      guard !id.isEmpty else { throw DataError(file: csv, "row \(line): column \"\(idColumn)\" is empty: fill it in or drop the row") }
      // The same image twice would weigh double in training, or make two rows of a submission.
      if let earlier = rowOfId[id] { throw DataError(file: csv, "row \(line): id \"\(id)\" repeats row \(earlier): ids must be unique") }
      rowOfId[id] = line
      ids.append(id)
      if let labelIndex {
        guard !row[labelIndex].isEmpty else {
          throw DataError(file: csv, "row \(line): column \"\(header[labelIndex])\" is empty: fill it in or drop the row")
        }
        labelTexts.append(row[labelIndex])
      }
    }
    let labelling = encoding ?? LabelEncoding(labels: labelTexts)
    var labels: [Int32] = []
    for (offset, text) in labelTexts.enumerated() {
      guard let index = labelling.index(of: text) else {
        throw DataError(file: csv, "row \(offset + 2): label \"\(text)\" is not one of the training classes (\(labelling.classes.prefix(10).joined(separator: ", "))…)")
      }
      labels.append(Int32(index))
    }
    if labelIndex == nil { labels = [Int32](repeating: 0, count: ids.count) }
    let paths = try ids.enumerated().map { offset, id -> String in
      for candidate in [id, id + ".png", id + ".jpg", id + ".jpeg"] {
        let path = imageFolder + "/" + candidate
        if FileManager.default.fileExists(atPath: path) && !candidate.isEmpty { return path }
      }
      throw DataError(file: csv, "row \(offset + 2): no image for id \"\(id)\" in \(imageFolder) (tried \(id).png, .jpg, .jpeg)")
    }
    var dataset = try decode(paths, labels: labels, classes: labelling.classes.count, loading: loading) { "\(csv) row \($0 + 2)" }
    dataset.ids = ids
    dataset.isLabelled = labelIndex != nil
    dataset.classNames = labelling.classes
    return (dataset, labelling)
  }

  /// Class sub-folders: `folder/CLASS/*.png|jpg|jpeg`, classes sorted by name (or given by
  /// `encoding`, whose classes every sub-folder must name). Ids are "CLASS/file".
  public static func loadClassFolders(
    _ folder: String, encoding: LabelEncoding? = nil, loading: ImageLoading = ImageLoading()
  ) throws -> (dataset: ImageDataset, encoding: LabelEncoding) {
    let classes = try Folders.list(folder).filter { Folders.isFolder(folder + "/" + $0) }
    guard !classes.isEmpty else { throw DataError(file: folder, "has no class sub-folders (expected FOLDER/CLASS/image.png)") }
    let labelling = encoding ?? LabelEncoding(labels: classes)
    var paths: [String] = []
    var labels: [Int32] = []
    var ids: [String] = []
    for name in classes {
      guard let label = labelling.index(of: name) else {
        throw DataError(file: folder + "/" + name, "is not one of the training classes (\(labelling.classes.prefix(10).joined(separator: ", "))…)")
      }
      let files = try Folders.list(folder + "/" + name).filter {
        ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
      }
      // An empty class folder would be a class no example teaches.
      guard !files.isEmpty else {
        throw DataError(file: folder + "/" + name, "is a class folder with no .png, .jpg or .jpeg images: add images or remove it")
      }
      for file in files {
        paths.append(folder + "/" + name + "/" + file)
        labels.append(Int32(label))
        ids.append(name + "/" + file)
      }
    }
    var dataset = try decode(paths, labels: labels, classes: labelling.classes.count, loading: loading) { paths[$0] }
    dataset.ids = ids
    dataset.classNames = labelling.classes
    return (dataset, labelling)
  }

  /// An unlabelled folder of images (a test set): every PNG/JPEG in `folder`, sorted by
  /// name; ids are the file names without extension.
  public static func loadImageFolder(_ folder: String, classes: Int, loading: ImageLoading = ImageLoading()) throws -> ImageDataset {
    let files = try Folders.list(folder).filter {
      ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased())
    }
    guard !files.isEmpty else { throw DataError(file: folder, "holds no .png, .jpg or .jpeg images") }
    var dataset = try decode(
      files.map { folder + "/" + $0 }, labels: [Int32](repeating: 0, count: files.count), classes: classes, loading: loading
    ) { folder + "/" + files[$0] }
    dataset.ids = files.map { ($0 as NSString).deletingPathExtension }
    dataset.isLabelled = false
    return dataset
  }

  /// Decodes, converts and resizes every image; every image must load.
  static func decode(
    _ paths: [String], labels: [Int32], classes: Int, loading: ImageLoading, describe: (Int) -> String
  ) throws -> ImageDataset {
    guard !paths.isEmpty else { throw DataError(file: describe(0), "no images") }
    var pixels: [UInt8] = []
    var size = loading.size
    var converted = ConvertedImages()
    for (index, path) in paths.enumerated() {
      var image: DecodedImage
      do {
        let bytes = try FileBytes.read(path)
        image = try ImageCodec.decode(bytes, path: path, channels: loading.channels)
        if let colour = ImageCodec.storesColour(bytes), colour != (loading.channels == 3) {
          converted.count += 1
          converted.example = converted.example ?? path
        }
      } catch let error as DataError {
        throw DataError(file: error.file, error.problem + (describe(index) == path ? "" : " (\(describe(index)))"))
      }
      if let (height, width) = size {
        if image.height != height || image.width != width {
          guard loading.size != nil else {
            throw DataError(file: path, "is \(image.height)×\(image.width), earlier images are \(height)×\(width): pass an image size to resize (\(describe(index)))")
          }
          image = loading.interpolation.resize(image, height: height, width: width)
        }
      } else {
        size = (image.height, image.width)
      }
      pixels += image.pixels
    }
    var dataset = ImageDataset(pixels: pixels, labels: labels, height: size!.height, width: size!.width, channels: loading.channels, classes: classes)
    dataset.convertedImages = converted
    return dataset
  }
}

/// Image files whose colour `ImageLoading.channels` changed: colour files read as grey
/// (channels 1), or grey files whose one channel was repeated three times (channels 3).
public struct ConvertedImages: Sendable, Equatable {
  public var count = 0
  /// The first such file.
  public var example: String?

  /// What a user should be told, or nil: colour thrown away, or an all-grey set tripled
  /// (a grey file among colour ones is expected, and repeating it is right).
  public func warning(of total: Int, channels: Int) -> String? {
    guard let example else { return nil }
    if channels == 1 {
      return "\(count) of \(total) images are colour files, read as grey (e.g. \(example)): pass --channels 3 (channels: 3 in an experiment's data section) to train on their colour"
    }
    guard count == total else { return nil }
    return "all \(total) images are grey files, each channel repeated into RGB (e.g. \(example)): --channels 1 trains on the same information with a third of the input"
  }
}
