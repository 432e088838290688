import Data
import Experiment
import Foundation
import NN
import Tensor
import Training
import RunLayout

/// Grad-CAM heat maps of training examples, each from the fold model of a variant that did
/// not train on it (checkpoints/VARIANT/foldK.safetensors), with that checkpoint's
/// normalisation.
public final class FoldModelExplainer {
  public let runDirectory: String
  public let variant: Experiment.Variant
  public let training: ImageDataset
  public let folds: FoldAssignment
  public let configuration: MobileNetV2Configuration
  private var loaded: [Int: (cam: GradCAM, assembler: BatchAssembler)] = [:]

  /// Nil when the variant's checkpoints are not all in the run directory.
  public init?(runDirectory: String, variant: Experiment.Variant, training: ImageDataset, folds: FoldAssignment, file: String) throws {
    let paths = (0..<folds.count).map { RunDirectory(runDirectory).memberCheckpoint(variant: variant.name, fold: $0) }
    guard paths.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) else { return nil }
    self.runDirectory = runDirectory
    self.variant = variant
    self.training = training
    self.folds = folds
    configuration = try TaskSpecification.configuration(of: variant, for: training, file: file).model
  }

  public func heatMap(row: Int, classIndex: Int) -> (values: [Float], height: Int, width: Int)? {
    let fold = Int(folds.fold[row])
    if loaded[fold] == nil {
      let path = RunDirectory(runDirectory).memberCheckpoint(variant: variant.name, fold: fold)
      guard let predictor = try? Predictor(
        checkpoint: path, configuration: configuration, expected: "the experiment's \(variant.name)", batchSize: 1,
        backend: CPUBackend(threads: 1), threads: 1)
      else { return nil }
      loaded[fold] = (GradCAM(model: predictor.model), predictor.assembler)
    }
    guard let (cam, assembler) = loaded[fold] else { return nil }
    // Normalised as in training, by the assembler training uses (no augmentation).
    let image = Tensor(shape: [training.imageSize])
    var label: Int32 = 0
    assembler.assemble(training, indices: [row], augmentation: .none, seed: 0, epoch: 0, images: image, labels: &label)
    return cam.heatMap(image, classIndex: classIndex)
  }
}
