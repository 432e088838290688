import Files
import Foundation

/// The Quick, Draw! `numpy_bitmap` layout: a folder of `CLASS.npy` files, each uint8
/// [n, H·W] (square images) or [n, H, W] or [n, H, W, C]. Class names come from the file
/// names, sorted; label c is the c-th name.
extension ImageDataset {
  public static func loadClassArrays(folder: String) throws -> ImageDataset {
    let names = try Folders.list(folder).filter { $0.hasSuffix(".npy") }
    guard !names.isEmpty else { throw DataError(file: folder, "holds no .npy files (expected one CLASS.npy per class)") }
    var pixels: [UInt8] = []
    var labels: [Int32] = []
    var imageShape: [Int]?
    var firstFile = ""
    for (label, name) in names.enumerated() {
      let path = folder + "/" + name
      let (dtype, shape, payload) = try NumPy.read(path)
      guard dtype == .uint8 else { throw DataError(file: path, "dtype \(dtype.rawValue), expected |u1 (uint8 pixels)") }
      let perImage: [Int]
      switch shape.count {
      case 2:
        let side = Int(Double(shape[1]).squareRoot().rounded())
        guard side * side == shape[1] else {
          throw DataError(file: path, "shape \(shape): \(shape[1]) pixels per row is not a square image; use [n, H, W]")
        }
        perImage = [side, side, 1]
      case 3: perImage = [shape[1], shape[2], 1]
      case 4: perImage = [shape[1], shape[2], shape[3]]
      default: throw DataError(file: path, "shape \(shape), expected [n, H·W], [n, H, W] or [n, H, W, C]")
      }
      if let imageShape, imageShape != perImage {
        throw DataError(file: path, "images are \(perImage.map(String.init).joined(separator: "×")), but \(firstFile) has \(imageShape.map(String.init).joined(separator: "×"))")
      }
      if imageShape == nil {
        imageShape = perImage
        firstFile = name
      }
      pixels += payload
      labels += [Int32](repeating: Int32(label), count: shape[0])
    }
    let shape = imageShape!
    return ImageDataset(
      pixels: pixels, labels: labels, height: shape[0], width: shape[1], channels: shape[2], classes: names.count,
      classNames: names.map { String($0.dropLast(4)) })
  }
}
