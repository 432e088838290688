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
  ///
  /// With targets q = (1 − ε)·t + ε/K (t the one-hot label or a row of soft targets),
  /// class weights w (1 without) and p = softmax(z + adjustment):
  ///   loss = Σᵢ −Σ_c w_c·q_ic·(1 − p_ic)^γ·log p_ic / Σᵢ Σ_c t_ic·w_c.
  /// Each class's term carries that class's weight, smoothing terms included, and the
  /// total is normalised by the weights of the labels: PyTorch's
  /// `cross_entropy(weight=w, label_smoothing=ε)` for hard labels, and one-hot soft targets
  /// give the same loss as their labels. Without class weights every example counts 1.
  /// (Until 2026-12 the whole smoothed loss of an example was scaled by its label's
  /// weight instead, which PyTorch does not do.)
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
    @inline(__always) func classWeight(_ c: Int) -> Double { options.classWeights.map { Double($0[c]) } ?? 1 }
    // Q_ic = w_c·q_ic: the weighted target of class c.
    @inline(__always) func weightedTarget(_ n: Int, _ c: Int) -> Double {
      classWeight(c) * (offTarget + (1 - smoothing) * target(n, c))
    }
    var totalWeight = 0.0
    for n in 0..<batch {
      if options.classWeights == nil { totalWeight += 1; continue }
      for c in 0..<classes { totalWeight += target(n, c) * classWeight(c) }
    }
    let share = 1 / totalWeight
    var loss = 0.0
    for n in 0..<batch {
      let row = logits.data + n * classes
      let gradient = logitGradient.data + n * classes
      @inline(__always) func logit(_ c: Int) -> Double { Double(row[c]) + Double(options.logitAdjustment?[c] ?? 0) }
      var largest = -Double.infinity
      for c in 0..<classes { largest = max(largest, logit(c)) }
      var sum = 0.0
      for c in 0..<classes { sum += exp(logit(c) - largest) }
      let logSum = largest + log(sum)
      if gamma == 0 {
        // ∂/∂z_j = p_j·Σ_c Q_c − Q_j; without class weights Σ_c Q_c = 1.
        var sumQ = 1.0
        if options.classWeights != nil {
          sumQ = 0
          for c in 0..<classes { sumQ += weightedTarget(n, c) }
        }
        var exampleLoss = 0.0
        for c in 0..<classes {
          let logProbability = logit(c) - logSum
          let q = weightedTarget(n, c)
          exampleLoss -= q * logProbability
          gradient[c] = Float(share * (exp(logProbability) * sumQ - q))
        }
        loss += share * exampleLoss
        continue
      }
      // Focal: with A_c = Q_c·(γ(1 − p_c)^(γ−1)·p_c·log p_c − (1 − p_c)^γ),
      // ∂/∂z_j = A_j − p_j·Σ_c A_c.
      var exampleLoss = 0.0
      var sumA = 0.0
      for c in 0..<classes {
        let logProbability = logit(c) - logSum
        let p = exp(logProbability)
        let q = weightedTarget(n, c)
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
        gradient[c] = Float(share * (Double(gradient[c]) - p * sumA))
      }
      loss += share * exampleLoss
    }
    return loss
  }
}
