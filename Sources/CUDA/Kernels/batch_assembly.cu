// CPU twin: BatchAssembler.assemble (Sources/Data/BatchAssembler.swift), its integer path:
// torchvision's RandomCrop(size, padding) and RandomHorizontalFlip, random erasing, then
// (pixel/255 − mean)/std. The draws (which stored image, its shift, flip and erased
// rectangle) are the host's, from the same Philox streams (BatchAssembler.plan): eight
// int32 per example. The 8-bit images stay in device memory for the whole run.
// Napkin maths: per output value one byte read (an image is 784 B at 28×28, so its reads
// hit the cache) and 4 B written: 3.2 MB written at batch 1024, 28×28×1, against 3.2 MB
// copied from the host per step without it: memory-bound, microseconds on any GPU.
// Launch: any grid-stride.
// Bit for bit the CPU's: __fmul_rn and __fadd_rn keep the compiler from fusing
// pixel·scale + offset into one FMA, which the CPU does not do.

// images[slot, y, x, c] for `batch` examples: plan[slot] = {stored image, dy, dx, flip,
// erased top, left, height, width (0: none)}; normalization = {scale[C], offset[C]}.
extern "C" __global__ void assemble_images(const unsigned char* __restrict__ pixels, const int* __restrict__ plan, int batch,
                                           int height, int width, int channels, const float* __restrict__ normalization,
                                           float* __restrict__ images) {
  long long image = (long long)height * width * channels;
  long long count = (long long)batch * image;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count; i += (long long)gridDim.x * blockDim.x) {
    int slot = (int)(i / image);
    int within = (int)(i % image);
    int c = within % channels, x = within / channels % width, y = within / channels / width;
    const int* p = plan + 8 * slot;
    int dy = p[1], dx = p[2], flip = p[3], top = p[4], left = p[5], erased_height = p[6], erased_width = p[7];
    if (erased_height > 0 && y >= top && y < top + erased_height && x >= left && x < left + erased_width) {
      images[i] = 0.f;  // erased to the mean
      continue;
    }
    int sy = y + dy, sx = (flip ? width - 1 - x : x) + dx;
    bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
    float raw = inside ? (float)pixels[p[0] * image + ((long long)sy * width + sx) * channels + c] : 0.f;
    images[i] = __fadd_rn(__fmul_rn(raw, normalization[c]), normalization[channels + c]);
  }
}
