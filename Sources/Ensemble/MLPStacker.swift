import COpenBLAS
import Foundation
import Training

/// The dense stacking meta-learner (the Quick, Draw! winners' second level): one hidden
/// layer of tanh units on the members' standardised log-probabilities, then a softmax;
/// L2 on the weights (not the biases), class-balanced where asked, fitted full-batch by
/// L-BFGS from a seeded start, so the same library always gives the same stacker.
///
/// It can learn what the logistic stacker cannot: interactions between members ("trust A
/// on class 3 unless B disagrees"). With few examples of a class it can also overfit,
/// which the cross-validated score shows.
public struct MLPStacker: Codable, Equatable, Sendable {
  public let classes: Int
  public let features: Int
  public let hidden: Int
  public var l2: Double
  /// Each feature's mean and standard deviation over the examples it was fitted on.
  public var mean: [Double]
  public var scale: [Double]
  /// hidden × features, then hidden biases, then classes × hidden, then class biases.
  public var parameters: [Double]

  public init(members: Int, classes: Int, hidden: Int = 32, l2: Double = 1e-3, seed: UInt64 = 0) {
    precondition(members > 0 && classes > 1 && hidden > 0)
    self.classes = classes
    features = members * classes
    self.hidden = hidden
    self.l2 = l2
    mean = [Double](repeating: 0, count: features)
    scale = [Double](repeating: 1, count: features)
    // Glorot-uniform weights from SplitMix64; zero biases.
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    func uniform() -> Double {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      z ^= z >> 31
      return Double(z >> 11) / Double(1 << 53) * 2 - 1
    }
    let first = (features * hidden, sqrt(6 / Double(features + hidden)))
    let second = (classes * hidden, sqrt(6 / Double(hidden + classes)))
    parameters = (0..<first.0).map { _ in first.1 * uniform() } + [Double](repeating: 0, count: hidden)
      + (0..<second.0).map { _ in second.1 * uniform() } + [Double](repeating: 0, count: classes)
  }

  // Offsets of the four blocks in `parameters`.
  var hiddenBiasOffset: Int { features * hidden }
  var outputWeightOffset: Int { hiddenBiasOffset + hidden }
  var outputBiasOffset: Int { outputWeightOffset + classes * hidden }

  /// The standardised inputs, row-major rows × features.
  func inputs(_ members: [Predictions]) -> [Double] { standardised(LogisticStacker.features(members)) }

  func standardised(_ features: [Double]) -> [Double] {
    var x = features
    for i in x.indices { x[i] = (x[i] - mean[i % self.features]) / scale[i % self.features] }
    return x
  }

  public mutating func fit(_ members: [Predictions], labels: [Int32], exampleWeights: [Double]? = nil, iterations: Int = 200) {
    let raw = LogisticStacker.features(members)
    let rows = labels.count
    for f in 0..<features {
      var sum = 0.0
      var squares = 0.0
      for row in 0..<rows { sum += raw[row * features + f] }
      mean[f] = sum / Double(rows)
      for row in 0..<rows { squares += (raw[row * features + f] - mean[f]) * (raw[row * features + f] - mean[f]) }
      scale[f] = max(sqrt(squares / Double(rows)), 1e-3)
    }
    let x = standardised(raw)
    let weights = exampleWeights ?? [Double](repeating: 1, count: rows)
    var optimizer = LBFGS()
    optimizer.maximumIterations = iterations
    parameters = optimizer.minimize(parameters) { lossAndGradient($0, inputs: x, labels: labels, exampleWeights: weights) }
  }

  /// The objective `fit` minimises, at `parameters`, with this stacker's standardisation:
  /// its value and gradient (what a finite-difference check compares).
  public func objective(at parameters: [Double], _ members: [Predictions], labels: [Int32], exampleWeights: [Double]? = nil) -> (value: Double, gradient: [Double]) {
    lossAndGradient(parameters, inputs: inputs(members), labels: labels, exampleWeights: exampleWeights ?? [Double](repeating: 1, count: labels.count))
  }

  /// The fitted objective: the weighted mean cross-entropy plus ½·l2·‖weights‖², and its
  /// gradient (back-propagated through the two layers with BLAS).
  func lossAndGradient(_ w: [Double], inputs x: [Double], labels: [Int32], exampleWeights: [Double]) -> (value: Double, gradient: [Double]) {
    let rows = labels.count
    let (a, logits) = forward(w, inputs: x, rows: rows)
    let totalWeight = exampleWeights.reduce(0, +)
    var loss = 0.0
    // dLogits: weight·(softmax − onehot) / total, overwriting the logits.
    var dLogits = logits
    for row in 0..<rows {
      let base = row * classes
      let logSum = logSumExp(count: classes) { logits[base + $0] }
      let label = Int(labels[row])
      let weight = exampleWeights[row] / totalWeight
      loss -= weight * (logits[base + label] - logSum)
      for c in 0..<classes { dLogits[base + c] = weight * (exp(logits[base + c] - logSum) - (c == label ? 1 : 0)) }
    }
    var gradient = [Double](repeating: 0, count: w.count)
    w.withUnsafeBufferPointer { w in
      gradient.withUnsafeMutableBufferPointer { g in
        // dW2 = dLogitsᵀ·a (classes × hidden); db2 = column sums of dLogits.
        cblas_dgemm(
          CblasRowMajor, CblasTrans, CblasNoTrans, Int32(classes), Int32(hidden), Int32(rows), 1, dLogits, Int32(classes), a,
          Int32(hidden), 0, g.baseAddress! + outputWeightOffset, Int32(hidden))
        for row in 0..<rows { for c in 0..<classes { g[outputBiasOffset + c] += dLogits[row * classes + c] } }
        // dA = dLogits·W2 (rows × hidden), then through tanh: dZ = dA·(1 − a²).
        var dZ = [Double](repeating: 0, count: rows * hidden)
        cblas_dgemm(
          CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(hidden), Int32(classes), 1, dLogits, Int32(classes),
          w.baseAddress! + outputWeightOffset, Int32(hidden), 0, &dZ, Int32(hidden))
        for i in dZ.indices { dZ[i] *= 1 - a[i] * a[i] }
        // dW1 = dZᵀ·x (hidden × features); db1 = column sums of dZ.
        cblas_dgemm(
          CblasRowMajor, CblasTrans, CblasNoTrans, Int32(hidden), Int32(features), Int32(rows), 1, dZ, Int32(hidden), x,
          Int32(features), 0, g.baseAddress!, Int32(features))
        for row in 0..<rows { for h in 0..<hidden { g[hiddenBiasOffset + h] += dZ[row * hidden + h] } }
        for range in [0..<hiddenBiasOffset, outputWeightOffset..<outputBiasOffset] {
          for i in range {
            loss += 0.5 * l2 * w[i] * w[i]
            g[i] += l2 * w[i]
          }
        }
      }
    }
    return (loss, gradient)
  }

  /// The hidden activations (rows × hidden) and the logits (rows × classes).
  func forward(_ w: [Double], inputs x: [Double], rows: Int) -> (hidden: [Double], logits: [Double]) {
    var a = [Double](repeating: 0, count: rows * hidden)
    var logits = [Double](repeating: 0, count: rows * classes)
    w.withUnsafeBufferPointer { w in
      cblas_dgemm(
        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(hidden), Int32(features), 1, x, Int32(features), w.baseAddress!,
        Int32(features), 0, &a, Int32(hidden))
      for row in 0..<rows { for h in 0..<hidden { a[row * hidden + h] = tanh(a[row * hidden + h] + w[hiddenBiasOffset + h]) } }
      cblas_dgemm(
        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(classes), Int32(hidden), 1, a, Int32(hidden),
        w.baseAddress! + outputWeightOffset, Int32(hidden), 0, &logits, Int32(classes))
      for row in 0..<rows { for c in 0..<classes { logits[row * classes + c] += w[outputBiasOffset + c] } }
    }
    return (a, logits)
  }

  public func predict(_ members: [Predictions]) -> Predictions {
    let rows = members[0].rows
    let logits = forward(parameters, inputs: inputs(members), rows: rows).logits
    return Predictions(logits: logits.map { Float($0) }, classes: classes)
  }
}
