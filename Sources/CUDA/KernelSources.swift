/// The CUDA C sources of the backend's kernels, one op per file in Kernels/, embedded in
/// the binary as package resources (nothing to ship beside it), and the headers they share.
public enum KernelSources {
  public struct Source: Sendable {
    public let file: String
    public let text: String
  }

  static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

  /// Every kernel file.
  public static let all: [Source] = [
    Source(file: "batchnorm_statistics.cu", text: text(PackageResources.batchnorm_statistics_cu)),
    Source(file: "batchnorm_apply.cu", text: text(PackageResources.batchnorm_apply_cu)),
    Source(file: "batchnorm_backward.cu", text: text(PackageResources.batchnorm_backward_cu)),
    Source(file: "depthwise.cu", text: text(PackageResources.depthwise_cu)),
    Source(file: "im2col3x3.cu", text: text(PackageResources.im2col3x3_cu)),
    Source(file: "global_average_pool.cu", text: text(PackageResources.global_average_pool_cu)),
    Source(file: "residual.cu", text: text(PackageResources.residual_cu)),
    Source(file: "dropout.cu", text: text(PackageResources.dropout_cu)),
    Source(file: "softmax_cross_entropy.cu", text: text(PackageResources.softmax_cross_entropy_cu)),
    Source(file: "optimizer.cu", text: text(PackageResources.optimizer_cu)),
    Source(file: "convert.cu", text: text(PackageResources.convert_cu)),
    Source(file: "reduce.cu", text: text(PackageResources.reduce_cu)),
    Source(file: "training.cu", text: text(PackageResources.training_cu)),
    Source(file: "batch_assembly.cu", text: text(PackageResources.batch_assembly_cu)),
  ]

  /// Headers a kernel may #include.
  public static let headers: [(name: String, text: String)] = [
    ("philox.cuh", text(PackageResources.philox_cuh)), ("bfloat16.cuh", text(PackageResources.bfloat16_cuh)),
    ("nhwc.cuh", text(PackageResources.nhwc_cuh)), ("launch_rules.cuh", text(PackageResources.launch_rules_cuh)),
    ("block_reduce.cuh", text(PackageResources.block_reduce_cuh)),
  ]

  /// The kernels a file defines: every `extern "C" __global__ void NAME(`.
  public static func kernelNames(in source: Source) -> [String] {
    let marker = "__global__ void "
    var names: [String] = []
    var rest = Substring(source.text)
    while let found = rest.range(of: marker) {
      rest = rest[found.upperBound...]
      if let open = rest.firstIndex(of: "(") { names.append(String(rest[..<open]).trimmingCharacters(in: .whitespaces)) }
    }
    return names
  }
}
