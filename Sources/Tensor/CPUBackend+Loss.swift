#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension CPUBackend {
  public func softmaxCrossEntropy(
    logits: Tensor, labels: UnsafePointer<Int32>, batch: Int, classes: Int, options: CrossEntropyOptions,
    logitGradient: Tensor
  ) -> Double {
    let smoothing = Double(options.labelSmoothing)
    let offTarget = smoothing / Double(classes)
    let gamma = Double(options.focalGamma)
    var totalWeight = 0.0
    for n in 0..<batch { totalWeight += Double(options.classWeights?[Int(labels[n])] ?? 1) }
    var loss = 0.0
    for n in 0..<batch {
      let row = logits.data + n * classes
      let gradient = logitGradient.data + n * classes
      let label = Int(labels[n])
      let weight = Double(options.classWeights?[label] ?? 1) / totalWeight
      @inline(__always) func logit(_ c: Int) -> Double { Double(row[c]) + Double(options.logitAdjustment?[c] ?? 0) }
      var largest = -Double.infinity
      for c in 0..<classes { largest = max(largest, logit(c)) }
      var sum = 0.0
      for c in 0..<classes { sum += exp(logit(c) - largest) }
      let logSum = largest + log(sum)
      if gamma == 0 {
        var exampleLoss = 0.0
        for c in 0..<classes {
          let logProbability = logit(c) - logSum
          let target = offTarget + (c == label ? 1 - smoothing : 0)
          exampleLoss -= target * logProbability
          gradient[c] = Float(weight * (exp(logProbability) - target))
        }
        loss += weight * exampleLoss
        continue
      }
      // Focal: with A_c = q_c·(γ(1 − p_c)^(γ−1)·p_c·log p_c − (1 − p_c)^γ),
      // ∂/∂z_j = A_j − p_j·Σ_c A_c.
      var exampleLoss = 0.0
      var sumA = 0.0
      for c in 0..<classes {
        let logProbability = logit(c) - logSum
        let p = exp(logProbability)
        let target = offTarget + (c == label ? 1 - smoothing : 0)
        let remainder = 1 - p
        let modulation = pow(remainder, gamma)
        exampleLoss -= target * modulation * logProbability
        // (1 − p)^(γ−1)·p·log p → 0 as p → 1, for every γ > 0.
        let slope = remainder > 1e-12 ? gamma * modulation / remainder * p * logProbability : 0
        let a = target * (slope - modulation)
        gradient[c] = Float(a)
        sumA += a
      }
      for c in 0..<classes {
        let p = exp(logit(c) - logSum)
        gradient[c] = Float(weight * (Double(gradient[c]) - p * sumA))
      }
      loss += weight * exampleLoss
    }
    return loss
  }
}
