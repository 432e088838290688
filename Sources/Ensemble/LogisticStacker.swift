import Foundation
import Training

/// The stacking meta-learner: multinomial logistic regression on the members'
/// log-probabilities (features: every member's log-probability of every class, plus a
/// bias), with an L2 penalty on the weights (not the biases), fitted by L-BFGS.
public struct LogisticStacker: Codable, Equatable, Sendable {
  public var l2: Double
  public let classes: Int
  public let features: Int
  /// classes × (features + 1): each class's weights, then its bias.
  public var coefficients: [Double]

  public init(members: Int, classes: Int, l2: Double = 1e-3) {
    self.l2 = l2
    self.classes = classes
    features = members * classes
    coefficients = [Double](repeating: 0, count: classes * (members * classes + 1))
  }

  /// Row-major rows × features: member 0's log-probabilities, then member 1's, …
  public static func features(_ members: [Predictions]) -> [Double] {
    let rows = members[0].rows
    let classes = members[0].classes
    var x = [Double](repeating: 0, count: rows * members.count * classes)
    for row in 0..<rows {
      for (m, member) in members.enumerated() {
        for c in 0..<classes {
          // Clamped: a member's log(0) would dominate the fit.
          x[(row * members.count + m) * classes + c] = max(member.logProbabilities[row * classes + c], -30)
        }
      }
    }
    return x
  }

  /// `exampleWeights` (nil: all 1) weight each example's loss: class-balanced weights make
  /// the stacker fit balanced accuracy's NLL rather than the majority classes'.
  public mutating func fit(_ members: [Predictions], labels: [Int32], exampleWeights: [Double]? = nil) {
    let x = Self.features(members)
    let totalWeight = exampleWeights?.reduce(0, +) ?? Double(labels.count)
    let (rows, width) = (labels.count, features + 1)
    let (classes, features, l2) = (self.classes, self.features, self.l2)
    coefficients = LBFGS().minimize(coefficients) { w in
      var loss = 0.0
      var gradient = [Double](repeating: 0, count: w.count)
      var scores = [Double](repeating: 0, count: classes)
      for row in 0..<rows {
        let base = row * features
        for c in 0..<classes {
          var z = w[c * width + features]
          for f in 0..<features { z += w[c * width + f] * x[base + f] }
          scores[c] = z
        }
        let logSum = logSumExp(count: classes) { scores[$0] }
        let label = Int(labels[row])
        let weight = exampleWeights?[row] ?? 1
        loss -= weight * (scores[label] - logSum)
        for c in 0..<classes {
          let error = weight * (exp(scores[c] - logSum) - (c == label ? 1 : 0))
          for f in 0..<features { gradient[c * width + f] += error * x[base + f] }
          gradient[c * width + features] += error
        }
      }
      loss /= totalWeight
      for i in gradient.indices { gradient[i] /= totalWeight }
      for c in 0..<classes {
        for f in 0..<features {
          let weight = w[c * width + f]
          loss += 0.5 * l2 * weight * weight
          gradient[c * width + f] += l2 * weight
        }
      }
      return (loss, gradient)
    }
  }

  public func predict(_ members: [Predictions]) -> Predictions {
    let x = Self.features(members)
    let rows = members[0].rows
    let width = features + 1
    var logits = [Float](repeating: 0, count: rows * classes)
    for row in 0..<rows {
      for c in 0..<classes {
        var z = coefficients[c * width + features]
        for f in 0..<features { z += coefficients[c * width + f] * x[row * features + f] }
        logits[row * classes + c] = Float(z)
      }
    }
    return Predictions(logits: logits, classes: classes)
  }
}
