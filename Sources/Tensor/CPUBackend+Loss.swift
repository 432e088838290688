#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension CPUBackend {
  public func softmaxCrossEntropy(
    logits: Tensor, labels: Tensor, batch: Int, classes: Int, options: CrossEntropyOptions, logitGradient: Tensor, loss: Tensor
  ) {
    loss[0] = Float(
      softmaxCrossEntropy(
        logits: logits, labels: labelPointer(labels), batch: batch, classes: classes, options: options, logitGradient: logitGradient))
  }

  /// The loss with labels in host memory, returned in double precision (the reference the
  /// tests compare against).
  public func softmaxCrossEntropy(
    logits: Tensor, labels: UnsafePointer<Int32>, batch: Int, classes: Int, options: CrossEntropyOptions,
    logitGradient: Tensor
  ) -> Double {
    let smoothing = Double(options.labelSmoothing)
    let offTarget = smoothing / Double(classes)
    let gamma = Double(options.focalGamma)
    // t_ic: the soft target if given, else the one-hot label.
    @inline(__always) func target(_ n: Int, _ c: Int) -> Double {
      if let soft = options.softTargets { return Double(soft[n * classes + c]) }
      return c == Int(labels[n]) ? 1 : 0
    }
    @inline(__always) func exampleWeight(_ n: Int) -> Double {
      guard let weights = options.classWeights else { return 1 }
      if options.softTargets == nil { return Double(weights[Int(labels[n])]) }
      var sum = 0.0
      for c in 0..<classes { sum += target(n, c) * Double(weights[c]) }
      return sum
    }
    var totalWeight = 0.0
    for n in 0..<batch { totalWeight += exampleWeight(n) }
    var loss = 0.0
    for n in 0..<batch {
      let row = logits.data + n * classes
      let gradient = logitGradient.data + n * classes
      let weight = exampleWeight(n) / totalWeight
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
          let q = offTarget + (1 - smoothing) * target(n, c)
          exampleLoss -= q * logProbability
          gradient[c] = Float(weight * (exp(logProbability) - q))
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
        let q = offTarget + (1 - smoothing) * target(n, c)
        let remainder = max(1 - p, 0)
        let modulation = pow(remainder, gamma)
        exampleLoss -= q * modulation * logProbability
        // (1 − p)^(γ−1)·p·log p → 0 as p → 1, for every γ > 0.
        let slope = remainder > 1e-12 ? gamma * modulation / remainder * p * logProbability : 0
        let a = q * (slope - modulation)
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
