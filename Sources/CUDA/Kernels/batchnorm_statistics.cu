// Batch normalisation, training mode, first half: each channel's mean and biased variance
// over the rows (N·H·W) of an NHWC tensor. One block per channel slice, a fixed-order tree
// reduction in shared memory (no atomics), so results are bit-identical run to run.
// Two passes over the data (mean, then squared deviations) for float32 accuracy.
extern "C" __global__ void batchnorm_statistics(const float* __restrict__ x, int rows, int channels,
                                                float* __restrict__ mean, float* __restrict__ variance) {
  __shared__ float partial[256];
  int c = blockIdx.x;
  float sum = 0.f;
  for (int row = threadIdx.x; row < rows; row += blockDim.x) sum += x[(long long)row * channels + c];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  float m = partial[0] / rows;
  __syncthreads();
  float squares = 0.f;
  for (int row = threadIdx.x; row < rows; row += blockDim.x) {
    float d = x[(long long)row * channels + c] - m;
    squares += d * d;
  }
  partial[threadIdx.x] = squares;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    mean[c] = m;
    variance[c] = partial[0] / rows;
  }
}
