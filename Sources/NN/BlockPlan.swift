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
  var dropProbability: Float = 0

  /// torchvision's use_res_connect: stride 1 and as many channels out as in.
  var hasResidual: Bool { stride == 1 && inputChannels == outputChannels }
}

extension MobileNetV2Configuration {
  /// The 17 blocks in order. A block's input has the previous block's channels: the
  /// stage's input for its first block, the stage's output for the rest.
  var blockPlans: [BlockPlan] {
    var plans: [BlockPlan] = []
    var channels = stemChannels
    for (stage, setting) in Self.stages.enumerated() {
      let output = Self.makeDivisible(Double(setting.channels) * width)
      for i in 0..<setting.blocks {
        plans.append(BlockPlan(
          index: plans.count + 1, inputChannels: channels, outputChannels: output,
          stride: i == 0 ? stageStrides[stage] : 1, expansion: setting.expansion))
        channels = output
      }
    }
    let residualCount = plans.filter(\.hasResidual).count
    var residualSeen = 0
    for i in plans.indices where plans[i].hasResidual {
      residualSeen += 1
      plans[i].dropProbability = stochasticDepth * Float(residualSeen) / Float(residualCount)
    }
    return plans
  }
}
