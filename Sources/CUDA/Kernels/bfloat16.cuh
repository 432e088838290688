// bfloat16 as raw 16-bit words, converted by bit operations: no dependence on the CUDA
// toolkit's cuda_bf16.h (NVRTC from pip ships no headers), and the same rounding as the
// CPU backend's Wire.Precision (round to nearest, ties to even; NaN stays NaN).
#pragma once

typedef unsigned short bf16;

__device__ __forceinline__ float bf16_to_float(bf16 value) { return __int_as_float(((unsigned int)value) << 16); }

__device__ __forceinline__ bf16 float_to_bf16(float value) {
  unsigned int bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (bf16)((bits >> 16) | 0x0040u);  // quiet NaN
  unsigned int rounding = 0x7fffu + ((bits >> 16) & 1u);
  return (bf16)((bits + rounding) >> 16);
}
