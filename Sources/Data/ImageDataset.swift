import Files
/// Labelled 8-bit images in memory, NHWC. Kept as bytes (a quarter of float's size);
/// batches are converted and normalised as they are assembled.
public struct ImageDataset: Sendable {
  public var pixels: [UInt8]
  public var labels: [Int32]
  public let height: Int
  public let width: Int
  public let channels: Int
  public let classes: Int
  /// Names of the classes in label order, when the layout names them.
  public var classNames: [String]?
  /// The examples' ids (file names, CSV ids), when the layout has them: a submission
  /// needs them.
  public var ids: [String]?
  /// False for an unlabelled test set (its labels are placeholders).
  public var isLabelled = true
  /// The image files whose colour loading changed (PNG/JPEG layouts), for the loader's
  /// warning.
  public var convertedImages = ConvertedImages()

  public init(
    pixels: [UInt8], labels: [Int32], height: Int, width: Int, channels: Int, classes: Int, classNames: [String]? = nil
  ) {
    precondition(pixels.count == labels.count * height * width * channels)
    self.pixels = pixels
    self.labels = labels
    self.height = height
    self.width = width
    self.channels = channels
    self.classes = classes
    self.classNames = classNames
  }

  public var count: Int { labels.count }
  public var imageSize: Int { height * width * channels }

  /// An IDX image file ([n, H, W], or [n, H, W, C] in colour) with its IDX label file
  /// ([n]); labels must lie in 0..<classes (by default, the largest label + 1).
  public static func loadIDX(images: String, labels: String, classes: Int? = nil) throws -> ImageDataset {
    let (imageShape, pixels) = try IDX.readImages(images)
    let (labelShape, labelBytes) = try IDX.read(labels, dimensions: 1)
    guard imageShape.count == labelShape[0] else {
      throw DataError(file: labels, "holds \(labelShape[0]) labels but \(images) holds \(imageShape.count) images")
    }
    let classCount = classes ?? (Int(labelBytes.max() ?? 0) + 1)
    if let bad = labelBytes.firstIndex(where: { Int($0) >= classCount }) {
      throw DataError(file: labels, "label \(labelBytes[bad]) at index \(bad) is outside the class range 0…\(classCount - 1)")
    }
    return ImageDataset(
      pixels: pixels, labels: labelBytes.map { Int32($0) }, height: imageShape.height, width: imageShape.width,
      channels: imageShape.channels, classes: classCount)
  }

  /// An IDX image file without labels (a test set): ids are the positions "0", "1", ….
  public static func loadUnlabelledIDX(images: String, classes: Int) throws -> ImageDataset {
    let (shape, pixels) = try IDX.readImages(images)
    var dataset = ImageDataset(
      pixels: pixels, labels: [Int32](repeating: 0, count: shape.count), height: shape.height, width: shape.width,
      channels: shape.channels, classes: classes)
    dataset.ids = (0..<shape.count).map(String.init)
    dataset.isLabelled = false
    return dataset
  }

  /// One uint8 .npy of images without labels ([n, H·W] square, [n, H, W] or [n, H, W, C]):
  /// ids are the positions.
  public static func loadUnlabelledArray(_ path: String, classes: Int) throws -> ImageDataset {
    let (dtype, shape, payload) = try NumPy.read(path)
    guard dtype == .uint8 else { throw DataError(file: path, "dtype \(dtype.rawValue), expected |u1 (uint8 pixels)") }
    let geometry: (Int, Int, Int)
    switch shape.count {
    case 2:
      let side = Int(Double(shape[1]).squareRoot().rounded())
      guard side * side == shape[1] else { throw DataError(file: path, "shape \(shape): \(shape[1]) pixels per row is not a square image") }
      geometry = (side, side, 1)
    case 3: geometry = (shape[1], shape[2], 1)
    case 4: geometry = (shape[1], shape[2], shape[3])
    default: throw DataError(file: path, "shape \(shape), expected [n, H·W], [n, H, W] or [n, H, W, C]")
    }
    var dataset = ImageDataset(
      pixels: payload, labels: [Int32](repeating: 0, count: shape[0]), height: geometry.0, width: geometry.1, channels: geometry.2,
      classes: classes)
    dataset.ids = (0..<shape[0]).map(String.init)
    dataset.isLabelled = false
    return dataset
  }

  /// The examples at `indices`, in that order.
  /// This dataset followed by `other` (same image shape and classes); ids and names kept
  /// only where both have them.
  public func appending(_ other: ImageDataset) -> ImageDataset {
    precondition(other.height == height && other.width == width && other.channels == channels, "appending images of another shape")
    var joined = ImageDataset(
      pixels: pixels + other.pixels, labels: labels + other.labels, height: height, width: width, channels: channels,
      classes: max(classes, other.classes), classNames: classNames)
    if let ids, let otherIDs = other.ids { joined.ids = ids + otherIDs }
    return joined
  }

  public func subset(_ indices: [Int]) -> ImageDataset {
    var subsetPixels = [UInt8]()
    subsetPixels.reserveCapacity(indices.count * imageSize)
    for index in indices {
      subsetPixels.append(contentsOf: pixels[(index * imageSize)..<((index + 1) * imageSize)])
    }
    var subset = ImageDataset(
      pixels: subsetPixels, labels: indices.map { labels[$0] }, height: height, width: width,
      channels: channels, classes: classes, classNames: classNames)
    subset.ids = ids.map { ids in indices.map { ids[$0] } }
    subset.isLabelled = isLabelled
    return subset
  }

  /// Refuses a training set with a class no example teaches, when the class count came
  /// from the largest label (a label past the intended count widens the model silently).
  public func checkEveryClassHasExamples(source: String) throws {
    let empty = classCounts.indices.filter { classCounts[$0] == 0 }
    guard !empty.isEmpty else { return }
    throw DataError(
      file: source,
      "classes \(empty.map(String.init).joined(separator: ", ")) of 0…\(classes - 1) have no training examples (the class count, \(classes), comes from the largest label): fix the labels, or give the class count (--classes N) if the classes are meant to be absent")
  }

  /// Examples per class.
  public var classCounts: [Int] {
    var counts = [Int](repeating: 0, count: classes)
    for label in labels { counts[Int(label)] += 1 }
    return counts
  }

  /// Per-channel mean and standard deviation of pixels/255 (for normalisation).
  public func channelStatistics() -> (mean: [Float], std: [Float]) {
    var sums = [Double](repeating: 0, count: channels)
    var squares = [Double](repeating: 0, count: channels)
    pixels.withUnsafeBufferPointer { values in
      for i in 0..<values.count {
        let x = Double(values[i]) / 255
        sums[i % channels] += x
        squares[i % channels] += x * x
      }
    }
    let perChannel = Double(max(pixels.count / channels, 1))
    let mean = sums.map { $0 / perChannel }
    let std = zip(squares, mean).map { max($0 / perChannel - $1 * $1, 1e-12).squareRoot() }
    return (mean.map(Float.init), std.map(Float.init))
  }
}
