#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension CPUBackend {
  public func softmaxCrossEntropy(
    logits: Tensor, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
    labelSmoothing: Float, classWeights: Tensor?, logitGradient: Tensor
  ) -> Double {
    let smoothing = Double(labelSmoothing)
    let offTarget = smoothing / Double(classes)
    var totalWeight = 0.0
    for n in 0..<batch { totalWeight += Double(classWeights?[Int(labels[n])] ?? 1) }
    var loss = 0.0
    for n in 0..<batch {
      let row = logits.data + n * classes
      let gradient = logitGradient.data + n * classes
      let label = Int(labels[n])
      let weight = Double(classWeights?[label] ?? 1) / totalWeight
      var largest = -Double.infinity
      for c in 0..<classes { largest = max(largest, Double(row[c])) }
      var sum = 0.0
      for c in 0..<classes { sum += exp(Double(row[c]) - largest) }
      let logSum = largest + log(sum)
      var exampleLoss = 0.0
      for c in 0..<classes {
        let logProbability = Double(row[c]) - logSum
        let target = offTarget + (c == label ? 1 - smoothing : 0)
        exampleLoss -= target * logProbability
        gradient[c] = Float(weight * (exp(logProbability) - target))
      }
      loss += weight * exampleLoss
    }
    return loss
  }
}
