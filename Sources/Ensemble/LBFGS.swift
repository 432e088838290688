import Foundation

/// Limited-memory BFGS (Nocedal & Wright, algorithm 7.5) with a backtracking Armijo line
/// search: minimises a smooth function given its value and gradient.
struct LBFGS {
  var memory = 10
  var maximumIterations = 300
  /// Stop when the gradient's largest component falls below this.
  var tolerance = 1e-6

  func minimize(_ start: [Double], _ objective: ([Double]) -> (value: Double, gradient: [Double])) -> [Double] {
    var x = start
    var (value, gradient) = objective(x)
    var steps: [(s: [Double], y: [Double], rho: Double)] = []
    for _ in 0..<maximumIterations {
      guard gradient.map(abs).max() ?? 0 > tolerance else { break }
      // Two-loop recursion: direction = −H·gradient.
      var q = gradient
      var alphas: [Double] = []
      for step in steps.reversed() {
        let alpha = step.rho * dot(step.s, q)
        alphas.append(alpha)
        for i in q.indices { q[i] -= alpha * step.y[i] }
      }
      if let last = steps.last {
        let scale = dot(last.s, last.y) / dot(last.y, last.y)
        for i in q.indices { q[i] *= scale }
      }
      for (step, alpha) in zip(steps, alphas.reversed()) {
        let beta = step.rho * dot(step.y, q)
        for i in q.indices { q[i] += step.s[i] * (alpha - beta) }
      }
      var direction = q.map { -$0 }
      var slope = dot(gradient, direction)
      if slope >= 0 {  // not a descent direction: fall back to the gradient
        direction = gradient.map { -$0 }
        slope = dot(gradient, direction)
        steps.removeAll()
      }
      var length = 1.0
      var next = x
      var nextValue = value
      var nextGradient = gradient
      var accepted = false
      for _ in 0..<40 {
        next = zip(x, direction).map { $0 + length * $1 }
        (nextValue, nextGradient) = objective(next)
        if nextValue <= value + 1e-4 * length * slope {
          accepted = true
          break
        }
        length /= 2
      }
      guard accepted else { break }
      let s = zip(next, x).map { $0 - $1 }
      let y = zip(nextGradient, gradient).map { $0 - $1 }
      let sy = dot(s, y)
      if sy > 1e-12 {
        steps.append((s, y, 1 / sy))
        if steps.count > memory { steps.removeFirst() }
      }
      let improvement = value - nextValue
      (x, value, gradient) = (next, nextValue, nextGradient)
      if improvement < 1e-12 * max(1, abs(value)) { break }
    }
    return x
  }

  private func dot(_ a: [Double], _ b: [Double]) -> Double {
    var sum = 0.0
    for i in a.indices { sum += a[i] * b[i] }
    return sum
  }
}
