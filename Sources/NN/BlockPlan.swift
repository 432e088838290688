/// One inverted-residual block as the configuration lays it out: what the model builds,
/// what an inference-only model sizes its buffers for, and where stochastic depth drops.
/// Planned in one place so that no two walks over the stages can disagree about which
/// blocks have a residual.
struct BlockPlan {
  /// The block's position in `features` (1…17).
  let index: Int
  let inputChannels: Int
  let outputChannels: Int
  let stride: Int
  let expansion: Int
  /// Stochastic depth: residual block r of R drops its branch with probability S·r/R
  /// (the last one with S); 0 for a block without a residual.
  let dropProbability: Float

  /// torchvision's use_res_connect: stride 1 and as many channels out as in.
  var hasResidual: Bool { stride == 1 && inputChannels == outputChannels }
}

extension MobileNetV2Configuration {
  /// The 17 blocks in order. A block's input has the previous block's channels: the
  /// stage's input for its first block, the stage's output for the rest.
  var blockPlans: [BlockPlan] {
    var layout: [(input: Int, output: Int, stride: Int, expansion: Int)] = []
    var channels = stemChannels
    for (stage, setting) in Self.stages.enumerated() {
      let output = Self.makeDivisible(Double(setting.channels) * width)
      for i in 0..<setting.blocks {
        layout.append((channels, output, i == 0 ? stageStrides[stage] : 1, setting.expansion))
        channels = output
      }
    }
    let residualCount = layout.filter { $0.stride == 1 && $0.input == $0.output }.count
    var residualSeen = 0
    return layout.enumerated().map { offset, block in
      let residual = block.stride == 1 && block.input == block.output
      if residual { residualSeen += 1 }
      return BlockPlan(
        index: offset + 1, inputChannels: block.input, outputChannels: block.output, stride: block.stride,
        expansion: block.expansion,
        dropProbability: residual ? stochasticDepth * Float(residualSeen) / Float(residualCount) : 0)
    }
  }
}
