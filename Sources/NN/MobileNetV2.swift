import Tensor

/// MobileNetV2 with explicit forward and backward passes over buffers planned once for
/// `capacity` examples. Parameter names are torchvision's `mobilenet_v2` state_dict names.
public final class MobileNetV2 {
  public let configuration: MobileNetV2Configuration
  public let capacity: Int
  public let backend: Backend

  let inputGeometry: ImageGeometry
  let stem: Convolution3x3
  let stemNorm: BatchNormalization
  let stemGeometry: ImageGeometry
  let blocks: [InvertedResidual]
  let head: PointwiseConvolution
  let headNorm: BatchNormalization
  let headGeometry: ImageGeometry
  let pooled: Tensor
  let dropoutMask: Tensor
  let dropped: Tensor
  let featureGradient: Tensor
  public let classifier: Linear
  let workspace: BackwardWorkspace
  /// The training step's random-stream coordinate (the step), which dropout and
  /// stochastic depth read on the backend when they run (`prepareTrainingStep`).
  let step: StepScalars

  /// Every trainable parameter, in torchvision's order.
  public let parameters: [Parameter]
  /// Every batch normalisation, in order (running statistics live there).
  public let norms: [BatchNormalization]

  /// A model whose buffers are planned for batches of up to `capacity` examples. An
  /// `inferenceOnly` model keeps no activations for a backward pass: three shared
  /// buffers hold everything, and batch normalisation runs in place (a fifth to a tenth
  /// of a training model's memory); it cannot train.
  public init(_ configuration: MobileNetV2Configuration, capacity: Int, backend: Backend, inferenceOnly: Bool = false) throws {
    try configuration.validate()
    precondition(capacity >= 1)
    self.configuration = configuration
    self.capacity = capacity
    self.backend = backend
    self.inferenceOnly = inferenceOnly
    inputGeometry = ImageGeometry(
      batch: capacity, height: configuration.imageHeight, width: configuration.imageWidth,
      channels: configuration.inputChannels)
    stemGeometry = inputGeometry.convolved3x3(stride: configuration.stemStride, channels: configuration.stemChannels)
    let pool = inferenceOnly ? Self.inferenceBuffers(configuration, input: inputGeometry, backend: backend) : []
    func fresh(_ count: Int) -> Tensor { backend.makeTensor(shape: [count]) }
    stem = Convolution3x3(
      name: "features.0.0.weight", input: inputGeometry, outputChannels: configuration.stemChannels,
      stride: configuration.stemStride, output: pool.first ?? fresh(stemGeometry.count), backend: backend)
    stemNorm = BatchNormalization(
      name: "features.0.1", channels: configuration.stemChannels, activation: .relu6,
      output: pool.first ?? fresh(stemGeometry.count), backend: backend)

    var blocks: [InvertedResidual] = []
    var geometry = stemGeometry
    for plan in configuration.blockPlans {
      // Inference: the two pool buffers that do not hold this block's input.
      let current = blocks.last?.output ?? stemNorm.output
      let others = pool.filter { $0 !== current }
      let block = InvertedResidual(plan, input: geometry, shared: inferenceOnly ? (others[0], others[1]) : nil, backend: backend)
      blocks.append(block)
      geometry = block.outputGeometry
    }
    self.blocks = blocks
    let headIndex = blocks.count + 1
    let headOutput = pool.first { $0 !== blocks.last!.output } ?? fresh(geometry.rows * configuration.lastChannels)
    head = PointwiseConvolution(
      name: "features.\(headIndex).0.weight", inputChannels: geometry.channels,
      outputChannels: configuration.lastChannels, output: headOutput, backend: backend)
    headNorm = BatchNormalization(
      name: "features.\(headIndex).1", channels: configuration.lastChannels, activation: .relu6,
      output: inferenceOnly ? headOutput : fresh(geometry.rows * configuration.lastChannels), backend: backend)
    headGeometry = ImageGeometry(
      batch: capacity, height: geometry.height, width: geometry.width, channels: configuration.lastChannels)
    pooled = backend.makeTensor(shape: [capacity, configuration.lastChannels])
    dropoutMask = backend.makeTensor(shape: [capacity, configuration.lastChannels])
    dropped = backend.makeTensor(shape: [capacity, configuration.lastChannels])
    featureGradient = backend.makeTensor(shape: [capacity, configuration.lastChannels])
    classifier = Linear(
      name: "classifier.1", inputFeatures: configuration.lastChannels,
      outputFeatures: configuration.classes, capacity: capacity, backend: backend)

    let boundaryCount = ([stemGeometry.count] + blocks.map { $0.outputGeometry.count }).max()!
    let scratchCount = ([stemGeometry.count, headGeometry.count] + blocks.map { $0.largestIntermediate }).max()!
    workspace = inferenceOnly
      ? BackwardWorkspace(scratchCount: 0, boundaryCount: 0, backend: backend)
      : BackwardWorkspace(scratchCount: scratchCount, boundaryCount: boundaryCount, backend: backend)

    step = StepScalars(count: 1, backend: backend)
    parameters = [stem.weight, stemNorm.scale, stemNorm.shift]
      + blocks.flatMap { $0.parameters }
      + [head.weight, headNorm.scale, headNorm.shift, classifier.weight, classifier.bias]
    norms = [stemNorm] + blocks.flatMap { $0.norms } + [headNorm]
    let blockLayers = blocks.enumerated().flatMap { [Int](repeating: $0.offset + 1, count: $0.element.parameters.count) }
    classifierParameters = [classifier.weight, classifier.bias]
    layers = [0, 0, 0] + blockLayers + [Int](repeating: blocks.count + 1, count: 3) + [blocks.count + 2, blocks.count + 2]
  }

  /// Each parameter's layer, input to output: 0 the stem, 1… the inverted residual blocks,
  /// then the head convolution, then the classifier (torchvision's `features.N` index, the
  /// classifier after them). Layer-wise learning-rate decay scales by it.
  public let layers: [Int]

  /// The classifier's weight and bias: what trains while the body is frozen.
  public let classifierParameters: [Parameter]

  /// Whether the model was planned for inference only.
  public let inferenceOnly: Bool

  /// Three buffers, each as large as the largest activation of the network.
  static func inferenceBuffers(_ configuration: MobileNetV2Configuration, input: ImageGeometry, backend: Backend) -> [Tensor] {
    var geometry = input.convolved3x3(stride: configuration.stemStride, channels: configuration.stemChannels)
    var largest = geometry.count
    for plan in configuration.blockPlans {
      let counts = InvertedResidual.activationCounts(plan, input: geometry)
      largest = max(largest, counts.max()!)
      geometry = geometry.convolved3x3(stride: plan.stride, channels: plan.outputChannels)
    }
    largest = max(largest, geometry.rows * configuration.lastChannels)
    return (0..<3).map { _ in backend.makeTensor(shape: [largest]) }
  }

  /// The number of trainable values.
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

  /// Each block's output geometry (batch 1) and its latest output [batch, h, w, c].
  public func blockOutput(_ index: Int) -> (geometry: ImageGeometry, values: Tensor) { (blocks[index].outputGeometry, blocks[index].output) }
  public var blockCount: Int { blocks.count }

  /// Spatial size of the last feature map.
  public var featureGeometry: ImageGeometry { headGeometry }

  /// Logits [batch, classes] for `images` [batch, H, W, Cin] (batch ≤ capacity).
  ///
  /// In training mode batch normalisation uses batch statistics and updates its running
  /// statistics, and dropout and stochastic depth draw from streams keyed by
  /// (seed, step), so a step is reproducible anywhere.
  @discardableResult
  public func forward(_ images: Tensor, batch: Int, training: Bool, frozenBody: Bool = false, seed: UInt64, step: UInt64) -> Tensor {
    if training { prepareTrainingStep(step) }
    return forward(images, batch: batch, training: training, frozenBody: frozenBody, seed: seed)
  }

  /// Writes the step whose random streams dropout and stochastic depth draw from to the
  /// backend, for the training-mode `forward(_:batch:training:seed:)` calls that follow:
  /// an upload, so it comes before a recorded step, never inside it.
  public func prepareTrainingStep(_ step: UInt64) {
    self.step.set(0, bits: UInt32(truncatingIfNeeded: step))
    self.step.write()
  }

  /// `forward` at the step last written by `prepareTrainingStep` (0 before any): what a
  /// recorded training step calls, since its operations read the step when they run.
  /// `frozenBody`: the features run in evaluation mode (batch norm on its running
  /// statistics, which stay as they are; no stochastic depth) while the classifier's
  /// dropout trains: the forward of a frozen-body step (`backwardClassifier`).
  @discardableResult
  public func forward(_ images: Tensor, batch: Int, training: Bool, frozenBody: Bool = false, seed: UInt64 = 0) -> Tensor {
    precondition(batch >= 1 && batch <= capacity, "batch \(batch) outside 1…\(capacity)")
    precondition(!(training && inferenceOnly), "an inference-only model cannot run in training mode")
    let trainingClassifier = training
    let training = training && !frozenBody
    let geometry = ImageGeometry(batch: batch, height: inputGeometry.height, width: inputGeometry.width, channels: inputGeometry.channels)
    stem.forward(images, geometry, backend: backend)
    let stemRows = batch * stemGeometry.height * stemGeometry.width
    stemNorm.forward(stem.output, rows: stemRows, training: training, backend: backend)
    var x = stemNorm.output
    for block in blocks {
      x = block.forward(x, batch: batch, training: training, seed: seed, stream: step[0], backend: backend)
    }
    let headRows = batch * headGeometry.height * headGeometry.width
    head.forward(x, rows: headRows, backend: backend)
    headNorm.forward(head.output, rows: headRows, training: training, backend: backend)
    backend.globalAveragePoolForward(input: headNorm.output, headGeometry.with(batch: batch), output: pooled)
    var features = pooled
    if trainingClassifier && configuration.dropout > 0 {
      backend.dropoutForward(
        input: pooled, count: batch * configuration.lastChannels, dropProbability: configuration.dropout, seed: seed,
        stream: step[0], mask: dropoutMask, output: dropped)
      features = dropped
    }
    classifier.forward(features, batch: batch, backend: backend)
    return classifier.output
  }

  /// Gradients of every parameter for the loss whose logit gradient is given, after a
  /// training-mode `forward` of the same batch. With `inputGradient`, also ∂loss/∂images.
  ///
  /// `training: false` differentiates an evaluation-mode forward instead (running
  /// statistics held constant, no dropout): what explanations need, not training (the
  /// parameter gradients are then meaningless). `blockGradient` sees ∂loss/∂(block i's
  /// output) as the pass reaches it.
  public func backward(
    logitGradient: Tensor, batch: Int, inputGradient: Tensor? = nil, training: Bool = true,
    blockGradient: ((_ block: Int, _ gradient: Tensor) -> Void)? = nil
  ) {
    precondition(!inferenceOnly, "an inference-only model keeps no activations for a backward pass")
    let lastChannels = configuration.lastChannels
    let dropout = training && configuration.dropout > 0
    let features = dropout ? dropped : pooled
    classifier.backward(
      input: features, outputGradient: logitGradient, inputGradient: featureGradient, batch: batch,
      backend: backend)
    if dropout {
      backend.dropoutBackward(gradient: featureGradient, count: batch * lastChannels, mask: dropoutMask)
    }
    let headBatch = headGeometry.with(batch: batch)
    backend.globalAveragePoolBackward(outputGradient: featureGradient, headBatch, inputGradient: workspace.first)
    headNorm.backward(
      input: head.output, outputGradient: workspace.first, inputGradient: workspace.first, rows: headBatch.rows, training: training,
      backend: backend)
    var gradient = workspace.boundaries.0
    var spare = workspace.boundaries.1
    let lastOutput = blocks.last!.output
    head.backward(input: lastOutput, outputGradient: workspace.first, inputGradient: gradient, rows: headBatch.rows, backend: backend)
    for i in stride(from: blocks.count - 1, through: 0, by: -1) {
      blockGradient?(i, gradient)
      let blockInput = i == 0 ? stemNorm.output : blocks[i - 1].output
      blocks[i].backward(
        input: blockInput, outputGradient: gradient, inputGradient: spare, batch: batch,
        workspace: workspace, training: training, backend: backend)
      swap(&gradient, &spare)
    }
    let stemRows = batch * stemGeometry.height * stemGeometry.width
    stemNorm.backward(
      input: stem.output, outputGradient: gradient, inputGradient: workspace.first, rows: stemRows, training: training, backend: backend)
    stem.backward(
      inputGeometry.with(batch: batch), outputGradient: workspace.first, inputGradient: inputGradient,
      backend: backend)
  }

  /// The classifier's gradients only, after a frozen-body training `forward`
  /// (`frozenBody: true`): the features take no gradient, so none flows past the
  /// classifier.
  public func backwardClassifier(logitGradient: Tensor, batch: Int) {
    precondition(!inferenceOnly, "an inference-only model keeps no activations for a backward pass")
    classifier.backward(
      input: configuration.dropout > 0 ? dropped : pooled, outputGradient: logitGradient, inputGradient: featureGradient,
      batch: batch, backend: backend)
  }

  /// Fills the parameters as torchvision does: Kaiming-normal (fan-out) convolutions,
  /// batch norm γ = 1, β = 0, classifier N(0, 0.01²) with zero bias. Each parameter
  /// draws from its own stream, so the values do not depend on storage order.
  public func initialize(seed: UInt64) {
    for (index, parameter) in parameters.enumerated() {
      let random = RandomStream(seed: seed, purpose: .initialization, stream: UInt32(index))
      let shape = parameter.checkpointShape
      let standardDeviation: Float
      if parameter.name.hasPrefix("classifier") {
        standardDeviation = parameter.name.hasSuffix(".weight") ? 0.01 : 0
      } else if shape.count == 4 {
        // PyTorch's fan-out: output maps × receptive field (not divided by groups).
        standardDeviation = (2 / Float(shape[0] * shape[2] * shape[3])).squareRoot()
      } else {
        backend.fill(parameter.value, with: parameter.name.hasSuffix(".weight") ? 1 : 0)
        continue
      }
      backend.upload((0..<parameter.count).map { standardDeviation * random.normal(at: UInt64($0)) }, to: parameter.value)
    }
    for norm in norms {
      backend.fill(norm.runningMean.value, with: 0)
      backend.fill(norm.runningVariance.value, with: 1)
      norm.batchesTracked = 0
    }
  }
}

extension ImageGeometry {
  public func with(batch: Int) -> ImageGeometry {
    ImageGeometry(batch: batch, height: height, width: width, channels: channels)
  }
}
