import Foundation

/// A student's training targets from a teacher (the ensemble): the teacher's
/// probabilities softened by a temperature, mixed with the hard label where there is one
/// (Hinton et al., 2015):  q = α·onehot(y) + (1 − α)·softmax(log p_teacher / T).
public struct Distillation: Codable, Equatable, Sendable {
  /// T > 1 softens the teacher (its "dark knowledge" about similar classes shows more).
  public var temperature = 2.0
  /// α: the weight of the hard label.
  public var hardLabelWeight = 0.5

  public init(temperature: Double = 2, hardLabelWeight: Double = 0.5) {
    self.temperature = temperature
    self.hardLabelWeight = hardLabelWeight
  }

  /// Row-major targets [rows, classes]; `labels` nil for unlabelled examples (the teacher
  /// alone).
  public func targets(teacher: Predictions, labels: [Int32]?) -> [Float] {
    let softened = TemperatureScaling.apply(teacher, temperature: temperature)
    let classes = teacher.classes
    var targets = [Float](repeating: 0, count: teacher.rows * classes)
    let alpha = labels == nil ? 0 : hardLabelWeight
    for row in 0..<teacher.rows {
      for c in 0..<classes {
        let hard = labels.map { Int($0[row]) == c ? 1.0 : 0.0 } ?? 0
        targets[row * classes + c] = Float(alpha * hard + (1 - alpha) * exp(softened.logProbabilities[row * classes + c]))
      }
    }
    return targets
  }
}
