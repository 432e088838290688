// Positions in NHWC tensors: the (image, row, column) of a flat pixel index p (one pixel
// = all its channels), shared by the kernels that walk a feature map value by value.
#pragma once

struct Pixel { int n, y, x; };

__device__ __forceinline__ Pixel pixel_at(long long p, int height, int width) {
  Pixel pixel;
  pixel.x = (int)(p % width);
  pixel.y = (int)((p / width) % height);
  pixel.n = (int)(p / ((long long)width * height));
  return pixel;
}
