import QuorumTestSupport
import Tensor
import XCTest

/// Every CPU operation's backward pass against central finite differences of its
/// forward pass, on the loss L = Σ r·output for a random r.
final class OperationGradientTests: XCTestCase {
  let backend = CPUBackend(threads: 2)

  func testConvolution3x3GradientsAtStrideOneAndTwo() {
    for stride in [1, 2] {
      let geometry = ImageGeometry(batch: 2, height: 7, width: 6, channels: 3)
      let outputChannels = 5
      let out = geometry.convolved3x3(stride: stride, channels: outputChannels)
      let input = randomTensor([geometry.count], seed: 1)
      let weight = randomTensor([outputChannels * 27], seed: 2, scale: 0.3)
      let output = Tensor(shape: [out.count])
      let columns = Tensor(shape: [out.rows * 27])
      let r = randomTensor([out.count], seed: 3)
      func loss() -> Double {
        backend.convolution3x3Forward(input: input, geometry, weight: weight, stride: stride, output: output, outputChannels: outputChannels, columns: columns)
        return weightedSum(output, r, count: out.count)
      }
      _ = loss()
      let inputGradient = Tensor(shape: [geometry.count])
      let weightGradient = Tensor(shape: [weight.capacity])
      backend.convolution3x3Backward(
        inputGradient: inputGradient, geometry, weight: weight, stride: stride, outputGradient: r,
        outputChannels: outputChannels, columns: columns, weightGradient: weightGradient)
      checkGradient("conv3x3 s\(stride) input", variable: input, analytic: inputGradient.array(), indices: Array(0..<geometry.count), loss: loss)
      checkGradient("conv3x3 s\(stride) weight", variable: weight, analytic: weightGradient.array(), indices: Array(0..<weight.capacity), loss: loss)
    }
  }

  func testDepthwiseGradientsForVectorAndScalarChannelCounts() {
    // 16 channels take the SIMD path, 11 the SIMD path plus a scalar tail.
    for (channels, stride) in [(16, 1), (16, 2), (11, 1), (11, 2)] {
      let geometry = ImageGeometry(batch: 3, height: 6, width: 5, channels: channels)
      let out = geometry.convolved3x3(stride: stride, channels: channels)
      let input = randomTensor([geometry.count], seed: 4)
      let weight = randomTensor([9 * channels], seed: 5, scale: 0.5)
      let output = Tensor(shape: [out.count])
      let r = randomTensor([out.count], seed: 6)
      func loss() -> Double {
        backend.depthwiseForward(input: input, geometry, weight: weight, stride: stride, output: output)
        return weightedSum(output, r, count: out.count)
      }
      _ = loss()
      let inputGradient = Tensor(shape: [geometry.count])
      let weightGradient = Tensor(shape: [weight.capacity])
      backend.depthwiseBackward(
        input: input, geometry, weight: weight, stride: stride, outputGradient: r, inputGradient: inputGradient,
        weightGradient: weightGradient)
      let label = "depthwise C=\(channels) s\(stride)"
      checkGradient(label + " input", variable: input, analytic: inputGradient.array(), indices: sampledIndices(geometry.count, count: 200), loss: loss)
      checkGradient(label + " weight", variable: weight, analytic: weightGradient.array(), indices: Array(0..<weight.capacity), loss: loss)
    }
  }

  func testBatchNormGradientsWithAndWithoutReLU6() {
    for (activation, channels) in [(Activation.none, 13), (.relu6, 16), (.relu6, 11)] {
      let rows = 40
      // Inputs spread so that ReLU6 clips at both ends for some values.
      let input = randomTensor([rows * channels], seed: 7, scale: 3, offset: 1)
      let scale = randomTensor([channels], seed: 8, scale: 0.5, offset: 2)
      let shift = randomTensor([channels], seed: 9, scale: 1, offset: 2)
      let output = Tensor(shape: [rows * channels])
      let mean = Tensor(shape: [channels]), variance = Tensor(shape: [channels])
      let r = randomTensor([rows * channels], seed: 10)
      func loss() -> Double {
        backend.batchNormTrainingForward(
          input: input, rows: rows, channels: channels, scale: scale, shift: shift, epsilon: 1e-5,
          activation: activation, output: output, batchMean: mean, batchVariance: variance)
        return weightedSum(output, r, count: rows * channels)
      }
      _ = loss()
      let inputGradient = Tensor(shape: [rows * channels])
      let scaleGradient = Tensor(shape: [channels]), shiftGradient = Tensor(shape: [channels])
      backend.batchNormBackward(
        input: input, output: output, rows: rows, channels: channels, scale: scale, batchMean: mean,
        batchVariance: variance, epsilon: 1e-5, activation: activation, outputGradient: r,
        inputGradient: inputGradient, scaleGradient: scaleGradient, shiftGradient: shiftGradient)
      let label = "batch norm \(activation) C=\(channels)"
      checkGradient(label + " input", variable: input, analytic: inputGradient.array(), indices: sampledIndices(rows * channels, count: 150), step: 1e-3, relative: 2e-2, absolute: 3e-3, loss: loss)
      checkGradient(label + " scale", variable: scale, analytic: scaleGradient.array(), indices: Array(0..<channels), step: 1e-3, relative: 2e-2, absolute: 3e-3, loss: loss)
      checkGradient(label + " shift", variable: shift, analytic: shiftGradient.array(), indices: Array(0..<channels), step: 1e-3, relative: 2e-2, absolute: 3e-3, loss: loss)
    }
  }

  func testBatchNormNormalisesAndInferenceUsesRunningStatistics() {
    let (rows, channels) = (64, 9)
    let input = randomTensor([rows * channels], seed: 11, scale: 4, offset: 3)
    let scale = Tensor(shape: [channels]); scale.fill(1)
    let shift = Tensor(shape: [channels])
    let output = Tensor(shape: [rows * channels])
    let mean = Tensor(shape: [channels]), variance = Tensor(shape: [channels])
    backend.batchNormTrainingForward(
      input: input, rows: rows, channels: channels, scale: scale, shift: shift, epsilon: 1e-5, activation: .none,
      output: output, batchMean: mean, batchVariance: variance)
    for c in 0..<channels {
      let column = (0..<rows).map { Double(output[$0 * channels + c]) }
      let m = column.reduce(0, +) / Double(rows)
      let v = column.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(rows)
      XCTAssertEqual(m, 0, accuracy: 1e-5)
      XCTAssertEqual(v, 1, accuracy: 1e-3)
    }
    // With the batch's own statistics as running statistics, inference equals training.
    let inference = Tensor(shape: [rows * channels])
    backend.batchNormInferenceForward(
      input: input, rows: rows, channels: channels, scale: scale, shift: shift, runningMean: mean,
      runningVariance: variance, epsilon: 1e-5, activation: .none, output: inference)
    for i in 0..<(rows * channels) { XCTAssertEqual(inference[i], output[i], accuracy: 1e-5) }
  }

  func testLinearPoolingResidualAndDropoutGradients() {
    let (batch, features, outputs) = (3, 7, 4)
    let input = randomTensor([batch * features], seed: 12)
    let weight = randomTensor([outputs * features], seed: 13)
    let bias = randomTensor([outputs], seed: 14)
    let output = Tensor(shape: [batch * outputs])
    let r = randomTensor([batch * outputs], seed: 15)
    func linearLoss() -> Double {
      backend.linearForward(input: input, batch: batch, inputFeatures: features, weight: weight, bias: bias, outputFeatures: outputs, output: output)
      return weightedSum(output, r, count: batch * outputs)
    }
    _ = linearLoss()
    let gi = Tensor(shape: [batch * features]), gw = Tensor(shape: [outputs * features]), gb = Tensor(shape: [outputs])
    backend.linearBackward(
      input: input, batch: batch, inputFeatures: features, weight: weight, outputFeatures: outputs, outputGradient: r,
      inputGradient: gi, weightGradient: gw, biasGradient: gb)
    checkGradient("linear input", variable: input, analytic: gi.array(), indices: Array(0..<input.capacity), loss: linearLoss)
    checkGradient("linear weight", variable: weight, analytic: gw.array(), indices: Array(0..<weight.capacity), loss: linearLoss)
    checkGradient("linear bias", variable: bias, analytic: gb.array(), indices: Array(0..<outputs), loss: linearLoss)

    let geometry = ImageGeometry(batch: 2, height: 3, width: 4, channels: 5)
    let image = randomTensor([geometry.count], seed: 16)
    let pooled = Tensor(shape: [2 * 5])
    let rp = randomTensor([10], seed: 17)
    func poolLoss() -> Double {
      backend.globalAveragePoolForward(input: image, geometry, output: pooled)
      return weightedSum(pooled, rp, count: 10)
    }
    _ = poolLoss()
    let gp = Tensor(shape: [geometry.count])
    backend.globalAveragePoolBackward(outputGradient: rp, geometry, inputGradient: gp)
    checkGradient("average pool", variable: image, analytic: gp.array(), indices: Array(0..<geometry.count), loss: poolLoss)

    // Residual with stochastic-depth factors: ∂/∂input = r, ∂/∂branch = r·factor[n].
    let branch = randomTensor([geometry.count], seed: 18)
    let factors = Tensor(shape: [2], values: [0, 1.25])
    let sum = Tensor(shape: [geometry.count])
    backend.residualForward(input: image, branch: branch, sampleScale: factors, batch: 2, sampleSize: 60, output: sum)
    for i in 0..<geometry.count { XCTAssertEqual(sum[i], image[i] + branch[i] * factors[i / 60], accuracy: 1e-6) }
    let rr = randomTensor([geometry.count], seed: 19)
    let branchGradient = Tensor(shape: [geometry.count])
    backend.scaleSamples(rr, sampleScale: factors, batch: 2, sampleSize: 60, output: branchGradient)
    for i in 0..<geometry.count { XCTAssertEqual(branchGradient[i], rr[i] * factors[i / 60]) }

    // Dropout: the mask is a deterministic function of the stream, kept ≈ 1 − p, scaled.
    let count = 10_000
    let ones = Tensor(shape: [count]); ones.fill(1)
    let mask = Tensor(shape: [count]), dropped = Tensor(shape: [count])
    let step = Tensor(shape: [1])
    step[0] = Float(bitPattern: 5)
    let stream = DeviceScalar(step, index: 0)
    backend.dropoutForward(input: ones, count: count, dropProbability: 0.2, seed: 3, stream: stream, mask: mask, output: dropped)
    let kept = (0..<count).filter { dropped[$0] != 0 }.count
    XCTAssertEqual(Double(kept) / Double(count), 0.8, accuracy: 0.02)
    XCTAssert((0..<count).allSatisfy { dropped[$0] == 0 || abs(dropped[$0] - 1.25) < 1e-6 })
    let again = Tensor(shape: [count])
    backend.dropoutForward(input: ones, count: count, dropProbability: 0.2, seed: 3, stream: stream, mask: Tensor(shape: [count]), output: again)
    XCTAssertEqual(dropped.array(), again.array(), "same stream, same mask")
    step[0] = Float(bitPattern: 6)
    let nextStep = Tensor(shape: [count])
    backend.dropoutForward(input: ones, count: count, dropProbability: 0.2, seed: 3, stream: stream, mask: Tensor(shape: [count]), output: nextStep)
    XCTAssertNotEqual(dropped.array(), nextStep.array(), "the stream's coordinate is read when the operation runs: another step, another mask")
    let g = randomTensor([count], seed: 20)
    let expected = (0..<count).map { g[$0] * mask[$0] }
    backend.dropoutBackward(gradient: g, count: count, mask: mask)
    XCTAssertEqual(g.array(), expected)
  }

  /// Class weights with label smoothing are PyTorch's: each class's smoothing term carries
  /// that class's weight and the batch is normalised by the labels' weights. The expected
  /// loss and gradient are `torch.nn.functional.cross_entropy(z, y, weight=w,
  /// label_smoothing=0.2)` in float64 with autograd, for exactly these numbers (PyTorch
  /// 2.15.0).
  func testClassWeightedSmoothingIsPyTorchs() {
    let (batch, classes) = (3, 4)
    let logits = Tensor(shape: [batch * classes], values: [0.5, -1.25, 2.0, 0.75, 1.5, 0.25, -0.5, -2.0, -0.75, 1.0, 0.125, 0.5])
    var labels: [Int32] = [0, 3, 1]
    let weights = Tensor(shape: [classes], values: [1, 2, 0.5, 3])
    let gradient = Tensor(shape: [batch * classes])
    let loss = labels.withUnsafeMutableBufferPointer {
      backend.softmaxCrossEntropy(
        logits: logits, labels: $0.baseAddress!, batch: batch, classes: classes,
        options: CrossEntropyOptions(labelSmoothing: 0.2, classWeights: weights), logitGradient: gradient)
    }
    XCTAssertEqual(loss, 2.3492322019442433, accuracy: 1e-6)
    let pytorch = [
      -0.11464738392291951, -0.01197141935508316, 0.11692535749435884, 0.00969344578364384, 0.3044455570721248,
      0.07294598579110478, 0.03816335305678945, -0.4155548959200191, 0.01704138014724012, -0.13731193923514662,
      0.056704106593374874, 0.06356645249453162,
    ]
    for (index, expected) in pytorch.enumerated() {
      XCTAssertEqual(Double(gradient[index]), expected, accuracy: 1e-6, "∂loss/∂z[\(index)]")
    }
  }

  func testCrossEntropyGradientsForEveryOption() {
    let (batch, classes) = (5, 4)
    let logits = randomTensor([batch * classes], seed: 21, scale: 2)
    var labels: [Int32] = [0, 3, 1, 1, 2]
    let weights = Tensor(shape: [classes], values: [1, 2, 0.5, 3])
    let prior = Tensor(shape: [classes], values: [0.6, 0.25, 0.1, 0.05].map { log(Float($0)) })
    let gradient = Tensor(shape: [batch * classes])
    // Soft targets: rows of a mixup of two labels.
    let soft = Tensor(shape: [batch, classes])
    for n in 0..<batch {
      soft[n * classes + Int(labels[n])] += 0.7
      soft[n * classes + (Int(labels[n]) + 1) % classes] += 0.3
    }
    let variants: [(String, CrossEntropyOptions)] = [
      ("soft targets", CrossEntropyOptions(softTargets: soft)),
      ("soft targets + smoothing + weights + focal", CrossEntropyOptions(labelSmoothing: 0.1, classWeights: weights, focalGamma: 1, softTargets: soft)),
      ("plain", CrossEntropyOptions()),
      ("smoothing", CrossEntropyOptions(labelSmoothing: 0.1)),
      ("smoothing + weights", CrossEntropyOptions(labelSmoothing: 0.2, classWeights: weights)),
      ("balanced softmax", CrossEntropyOptions(logitAdjustment: prior)),
      ("focal γ=2", CrossEntropyOptions(focalGamma: 2)),
      ("focal γ=0.5 + smoothing + adjustment + weights",
       CrossEntropyOptions(labelSmoothing: 0.1, classWeights: weights, logitAdjustment: prior, focalGamma: 0.5)),
    ]
    for (name, options) in variants {
      func loss() -> Double {
        labels.withUnsafeMutableBufferPointer {
          backend.softmaxCrossEntropy(
            logits: logits, labels: $0.baseAddress!, batch: batch, classes: classes, options: options, logitGradient: gradient)
        }
      }
      _ = loss()
      checkGradient("cross-entropy, \(name)", variable: logits, analytic: gradient.array(), indices: Array(0..<logits.capacity), step: 1e-3, loss: loss)
    }
    func value(_ options: CrossEntropyOptions) -> Double {
      labels.withUnsafeMutableBufferPointer {
        backend.softmaxCrossEntropy(
          logits: logits, labels: $0.baseAddress!, batch: batch, classes: classes, options: options, logitGradient: gradient)
      }
    }
    // Plain: the mean −log softmax of the label. Focal: each term scaled by (1 − p)^γ.
    // Balanced softmax: the plain loss of logits + log prior.
    var plain = 0.0, focal = 0.0, adjusted = 0.0
    for n in 0..<batch {
      let row = (0..<classes).map { Double(logits[n * classes + $0]) }
      let label = Int(labels[n])
      let logP = row[label] - log(row.map { exp($0) }.reduce(0, +))
      plain -= logP
      focal -= pow(1 - exp(logP), 2) * logP
      let shifted = (0..<classes).map { row[$0] + Double(prior[$0]) }
      adjusted -= shifted[label] - log(shifted.map { exp($0) }.reduce(0, +))
    }
    XCTAssertEqual(value(CrossEntropyOptions()), plain / Double(batch), accuracy: 1e-9)
    // One-hot soft targets are the labels, weights included.
    let oneHot = Tensor(shape: [batch, classes])
    for n in 0..<batch { oneHot[n * classes + Int(labels[n])] = 1 }
    XCTAssertEqual(
      value(CrossEntropyOptions(labelSmoothing: 0.1, classWeights: weights, softTargets: oneHot)),
      value(CrossEntropyOptions(labelSmoothing: 0.1, classWeights: weights)), accuracy: 1e-12)
    XCTAssertEqual(value(CrossEntropyOptions(focalGamma: 2)), focal / Double(batch), accuracy: 1e-9)
    XCTAssertEqual(value(CrossEntropyOptions(logitAdjustment: prior)), adjusted / Double(batch), accuracy: 1e-6)
  }

  func testGemmMatchesNaiveProductForEveryTransposition() {
    let (m, n, k) = (5, 6, 7)
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
      let a = randomTensor([m * k], seed: 22), b = randomTensor([k * n], seed: 23)
      let c = randomTensor([m * n], seed: 24)
      let original = c.array()
      backend.gemm(
        transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 2, a: a.data, lda: ta ? m : k, b: b.data,
        ldb: tb ? k : n, beta: 0.5, c: c.data, ldc: n)
      for i in 0..<m {
        for j in 0..<n {
          var sum: Float = 0
          for p in 0..<k { sum += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]) }
          XCTAssertEqual(c[i * n + j], 2 * sum + 0.5 * original[i * n + j], accuracy: 1e-4)
        }
      }
    }
  }

  func testThreadCountDoesNotChangeResultsOfSameThreadCountRuns() {
    // Same thread count → identical bits; different counts agree to rounding.
    let geometry = ImageGeometry(batch: 8, height: 9, width: 9, channels: 24)
    let input = randomTensor([geometry.count], seed: 25)
    let weight = randomTensor([9 * 24], seed: 26)
    let gradient = randomTensor([geometry.count], seed: 27)
    func weightGradient(threads: Int) -> [Float] {
      let backend = CPUBackend(threads: threads)
      let gi = Tensor(shape: [geometry.count]), gw = Tensor(shape: [9 * 24])
      backend.depthwiseBackward(input: input, geometry, weight: weight, stride: 1, outputGradient: gradient, inputGradient: gi, weightGradient: gw)
      return gw.array()
    }
    XCTAssertEqual(weightGradient(threads: 2), weightGradient(threads: 2))
    for (a, b) in zip(weightGradient(threads: 1), weightGradient(threads: 2)) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(a))) }
  }
}
