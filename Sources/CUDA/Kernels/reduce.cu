// CPU twins: the sums the CPU backend makes inside softmaxCrossEntropy (the loss) and
// linearBackward (the bias gradient, CPUBackend+Elementwise.swift).
// Fixed-order tree reductions (no atomics: the same bits every run). sum_in_order: one
// block adds a vector (the batch's loss shares). column_sums: one block per column of a
// row-major [rows, columns] matrix (the classifier's bias gradient, Σₙ dy[n, o]).
// Napkin maths: a few kB, latency-bound; one launch each.
// Launch: a power-of-two block ≤ 256; sum_in_order one block, column_sums one per column.
#include "block_reduce.cuh"
#include "launch_rules.cuh"

extern "C" __global__ void sum_in_order(const float* __restrict__ values, int count, float* __restrict__ result) {
  REQUIRE_REDUCTION_BLOCK("sum_in_order");
  KERNEL_REQUIRE(gridDim.x == 1, "sum_in_order", "needs a single block (gridDim.x = 1)");
  float sum = 0.f;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += values[i];
  float total = block_sum(sum);
  if (threadIdx.x == 0) result[0] = total;
}

extern "C" __global__ void column_sums(const float* __restrict__ matrix, int rows, int columns, float* __restrict__ sums) {
  REQUIRE_REDUCTION_BLOCK("column_sums");
  KERNEL_REQUIRE(gridDim.x == (unsigned)columns, "column_sums", "needs one block per column (gridDim.x = columns)");
  int column = blockIdx.x;
  float sum = 0.f;
  for (int row = threadIdx.x; row < rows; row += blockDim.x) sum += matrix[(long long)row * columns + column];
  float total = block_sum(sum);
  if (threadIdx.x == 0) sums[column] = total;
}
