import Tensor

/// MobileNetV2's block: 1×1 expansion + BN + ReLU6 (absent when t = 1), 3×3 depthwise +
/// BN + ReLU6, 1×1 projection + BN, and a residual connection when the stride is 1 and
/// the channel count is kept.
final class InvertedResidual {
  let input: ImageGeometry
  let outputGeometry: ImageGeometry
  let expanded: Int
  let expand: PointwiseConvolution?
  let expandNorm: BatchNormalization?
  let depthwise: DepthwiseConvolution
  let depthwiseNorm: BatchNormalization
  let project: PointwiseConvolution
  let projectNorm: BatchNormalization
  let hasResidual: Bool
  let dropProbability: Float
  let index: Int
  /// input + branch, when the block has a residual.
  let sum: Tensor?
  /// Per-example factor of the branch for stochastic depth: 0 or 1/(1 − p).
  let sampleScale: Tensor
  private var stochasticDepthActive = false

  /// The block `plan` lays out, at the input geometry (at capacity; its channels are the
  /// plan's). With `shared` buffers (inference-only models), the block writes its
  /// intermediates into them and normalises in place instead of keeping everything for a
  /// backward pass.
  init(_ plan: BlockPlan, input: ImageGeometry, shared: (Tensor, Tensor)? = nil, backend: Backend) {
    precondition(input.channels == plan.inputChannels, "block \(plan.index): \(input.channels) input channels, planned \(plan.inputChannels)")
    precondition((0..<1).contains(plan.dropProbability), "block \(plan.index): stochastic depth drop probability \(plan.dropProbability) outside [0, 1)")
    let (index, outputChannels, stride, expansion) = (plan.index, plan.outputChannels, plan.stride, plan.expansion)
    self.index = index
    self.input = input
    expanded = Int((Double(input.channels) * Double(expansion)).rounded())
    outputGeometry = input.convolved3x3(stride: stride, channels: outputChannels)
    hasResidual = plan.hasResidual
    dropProbability = plan.dropProbability
    let prefix = "features.\(index).conv"
    let outputRows = outputGeometry.rows
    // Training keeps every intermediate; inference alternates between the two shared
    // buffers (the block's input stays untouched in a third for the residual).
    func fresh(_ count: Int) -> Tensor { backend.makeTensor(shape: [count]) }
    var layer = 0
    var depthwiseOutput = fresh(0)
    if expansion != 1 {
      let expandOutput = shared?.0 ?? fresh(input.rows * expanded)
      expand = PointwiseConvolution(
        name: "\(prefix).0.0.weight", inputChannels: input.channels, outputChannels: expanded, output: expandOutput, backend: backend)
      expandNorm = BatchNormalization(
        name: "\(prefix).0.1", channels: expanded, activation: .relu6,
        output: shared == nil ? fresh(input.rows * expanded) : expandOutput, backend: backend)
      depthwiseOutput = shared?.1 ?? fresh(outputRows * expanded)
      layer = 1
    } else {
      expand = nil
      expandNorm = nil
      depthwiseOutput = shared?.0 ?? fresh(outputRows * expanded)
    }
    let expandedGeometry = ImageGeometry(batch: input.batch, height: input.height, width: input.width, channels: expanded)
    depthwise = DepthwiseConvolution(
      name: "\(prefix).\(layer).0.weight", input: expandedGeometry, stride: stride, output: depthwiseOutput, backend: backend)
    depthwiseNorm = BatchNormalization(
      name: "\(prefix).\(layer).1", channels: expanded, activation: .relu6,
      output: shared == nil ? fresh(outputRows * expanded) : depthwiseOutput, backend: backend)
    let projectOutput: Tensor
    if let shared { projectOutput = depthwiseOutput === shared.0 ? shared.1 : shared.0 } else { projectOutput = fresh(outputRows * outputChannels) }
    project = PointwiseConvolution(
      name: "\(prefix).\(layer + 1).weight", inputChannels: expanded, outputChannels: outputChannels, output: projectOutput, backend: backend)
    projectNorm = BatchNormalization(
      name: "\(prefix).\(layer + 2)", channels: outputChannels, activation: .none,
      output: shared == nil ? fresh(outputRows * outputChannels) : projectOutput, backend: backend)
    sum = hasResidual ? (shared == nil ? fresh(outputGeometry.count) : projectOutput) : nil
    sampleScale = backend.makeTensor(shape: [input.batch])
  }

  var parameters: [Parameter] {
    var list: [Parameter] = []
    if let expand, let expandNorm { list += [expand.weight, expandNorm.scale, expandNorm.shift] }
    list += [depthwise.weight, depthwiseNorm.scale, depthwiseNorm.shift]
    list += [project.weight, projectNorm.scale, projectNorm.shift]
    return list
  }

  var norms: [BatchNormalization] { [expandNorm, depthwiseNorm, projectNorm].compactMap { $0 } }

  /// The largest intermediate, in floats, at capacity (for the shared backward scratch).
  var largestIntermediate: Int { input.rows * expanded }

  /// The sizes of everything the block writes, at capacity (for inference buffers).
  static func activationCounts(_ plan: BlockPlan, input: ImageGeometry) -> [Int] {
    let expanded = Int((Double(input.channels) * Double(plan.expansion)).rounded())
    let output = input.convolved3x3(stride: plan.stride, channels: plan.outputChannels)
    return [input.rows * expanded, output.rows * expanded, output.count]
  }

  var output: Tensor { sum ?? projectNorm.output }

  /// Stochastic depth draws from the stream of `seed` whose coordinate `stream` holds
  /// (nil: none).
  func forward(_ x: Tensor, batch: Int, training: Bool, seed: UInt64, stream: DeviceScalar?, backend: Backend) -> Tensor {
    let inGeometry = ImageGeometry(batch: batch, height: input.height, width: input.width, channels: input.channels)
    let outRows = batch * outputGeometry.height * outputGeometry.width
    var depthwiseInput = x
    if let expand, let expandNorm {
      expand.forward(x, rows: inGeometry.rows, backend: backend)
      expandNorm.forward(expand.output, rows: inGeometry.rows, training: training, backend: backend)
      depthwiseInput = expandNorm.output
    }
    let expandedGeometry = ImageGeometry(batch: batch, height: input.height, width: input.width, channels: expanded)
    depthwise.forward(depthwiseInput, expandedGeometry, backend: backend)
    depthwiseNorm.forward(depthwise.output, rows: outRows, training: training, backend: backend)
    project.forward(depthwiseNorm.output, rows: outRows, backend: backend)
    projectNorm.forward(project.output, rows: outRows, training: training, backend: backend)
    guard let sum else { return projectNorm.output }
    stochasticDepthActive = training && dropProbability > 0 && stream != nil
    if stochasticDepthActive, let stream {
      // torchvision's StochasticDepth("row"): keep each example's branch with
      // probability 1 − p and scale it by 1/(1 − p).
      backend.stochasticDepthScales(
        seed: seed, stream: stream, block: index, batch: batch, dropProbability: dropProbability, output: sampleScale)
    }
    backend.residualForward(
      input: x, branch: projectNorm.output, sampleScale: stochasticDepthActive ? sampleScale : nil,
      batch: batch, sampleSize: outputGeometry.height * outputGeometry.width * outputGeometry.channels,
      output: sum)
    return sum
  }

  /// Writes the gradient with respect to the block's input into `inputGradient`
  /// (nil: parameter gradients only). Uses the two shared scratch tensors.
  func backward(
    input x: Tensor, outputGradient: Tensor, inputGradient: Tensor?, batch: Int,
    workspace: BackwardWorkspace, training: Bool = true, backend: Backend
  ) {
    let inRows = batch * input.height * input.width
    let outRows = batch * outputGeometry.height * outputGeometry.width
    var branchGradient = outputGradient
    if stochasticDepthActive {
      backend.scaleSamples(
        outputGradient, sampleScale: sampleScale, batch: batch,
        sampleSize: outputGeometry.height * outputGeometry.width * outputGeometry.channels,
        output: workspace.scaled)
      branchGradient = workspace.scaled
    }
    let (first, second) = (workspace.first, workspace.second)
    projectNorm.backward(input: project.output, outputGradient: branchGradient, inputGradient: first, rows: outRows, training: training, backend: backend)
    project.backward(input: depthwiseNorm.output, outputGradient: first, inputGradient: second, rows: outRows, backend: backend)
    depthwiseNorm.backward(input: depthwise.output, outputGradient: second, inputGradient: second, rows: outRows, training: training, backend: backend)
    let expandedGeometry = ImageGeometry(batch: batch, height: input.height, width: input.width, channels: expanded)
    if let expand, let expandNorm {
      depthwise.backward(input: expandNorm.output, expandedGeometry, outputGradient: second, inputGradient: first, backend: backend)
      expandNorm.backward(input: expand.output, outputGradient: first, inputGradient: first, rows: inRows, training: training, backend: backend)
      expand.backward(input: x, outputGradient: first, inputGradient: inputGradient, rows: inRows, backend: backend)
    } else if let inputGradient {
      depthwise.backward(input: x, expandedGeometry, outputGradient: second, inputGradient: inputGradient, backend: backend)
    } else {
      depthwise.backward(input: x, expandedGeometry, outputGradient: second, inputGradient: first, backend: backend)
    }
    if hasResidual, let inputGradient {
      backend.accumulate(inputGradient, outputGradient, count: inRows * input.channels)
    }
  }
}

/// Gradient storage shared by all layers during the backward pass: blocks run one after
/// another, so two scratch tensors sized for the largest intermediate serve them all.
public final class BackwardWorkspace {
  let first: Tensor
  let second: Tensor
  /// The gradient entering the current block, scaled for stochastic depth.
  let scaled: Tensor
  /// Gradients at block boundaries, alternated from block to block.
  let boundaries: (Tensor, Tensor)

  init(scratchCount: Int, boundaryCount: Int, backend: Backend) {
    first = backend.makeTensor(shape: [scratchCount])
    second = backend.makeTensor(shape: [scratchCount])
    scaled = backend.makeTensor(shape: [boundaryCount])
    boundaries = (backend.makeTensor(shape: [boundaryCount]), backend.makeTensor(shape: [boundaryCount]))
  }
}
