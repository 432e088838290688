// bfloat16 as raw 16-bit words, converted by bit operations: no dependence on the CUDA
// toolkit's cuda_bf16.h (NVRTC from pip ships no headers), and the same rounding as the
// wire's Wire.Precision and PyTorch's c10::BFloat16 (round to nearest, ties to even; every
// NaN becomes the canonical quiet NaN 0x7FC0, so conversions agree bit for bit).
#pragma once

typedef unsigned short bf16;

__device__ __forceinline__ float bf16_to_float(bf16 value) { return __int_as_float(((unsigned int)value) << 16); }

__device__ __forceinline__ bf16 float_to_bf16(float value) {
  unsigned int bits = __float_as_uint(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (bf16)0x7fc0u;
  unsigned int rounding = 0x7fffu + ((bits >> 16) & 1u);
  return (bf16)((bits + rounding) >> 16);
}
