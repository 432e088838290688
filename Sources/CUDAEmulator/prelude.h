// The CUDA built-ins Quorum's kernels use, defined for C++ on the CPU, so that the same
// .cu files compile as host code and run on the emulated device. A kernel file that needs
// a built-in not defined here fails to build the emulator: add it here, with the GPU's
// semantics, or keep the kernel to what is here (docs/cuda.md, "Writing a kernel").
#pragma once

#include <math.h>  // expf, logf, fmaxf, … as the kernels call them
#include <cstdint>
#include <cstring>

namespace emulator {

/// threadIdx, blockIdx, blockDim and gridDim: set by the scheduler before it runs (or
/// switches to) each thread.
struct Index3 {
  unsigned x, y, z;
};

/// What a thread of the running kernel may ask the scheduler for.
void barrier();  // __syncthreads
void warp_sync(unsigned mask);  // __syncwarp
enum class Shuffle { index, up, down, exclusive_or };
uint32_t shuffle(unsigned mask, uint32_t value, Shuffle kind, int argument, int width);
/// A kernel's launch rule was broken (KERNEL_REQUIRE): the launch fails with `message`.
void requirement_failed(const char* kernel, const char* message);

}  // namespace emulator

// Constant-initialised (declared so here): kernels read them without a call to a TLS
// initialisation wrapper, which cost an eighth of the emulator's time.
extern thread_local emulator::Index3 threadIdx __attribute__((require_constant_initialization)),
    blockIdx __attribute__((require_constant_initialization)), blockDim __attribute__((require_constant_initialization)),
    gridDim __attribute__((require_constant_initialization));

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// Shared memory is per block; blocks run one after another on the launching thread, so a
// function-local static is one block's shared memory (each block overwrites it).
#define __shared__ static thread_local

inline void __syncthreads() { emulator::barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emulator::warp_sync(mask); }

/// The same 32 bits read as another type (what the GPU's reinterpreting intrinsics do).
template <typename To, typename From>
inline To emulator_bit_cast(From value) {
  static_assert(sizeof(To) == sizeof(From) && sizeof(To) == 4, "32-bit reinterpretations only");
  To result;
  std::memcpy(&result, &value, sizeof result);
  return result;
}
inline float __int_as_float(int value) { return emulator_bit_cast<float>(value); }
inline float __uint_as_float(unsigned value) { return emulator_bit_cast<float>(value); }
inline int __float_as_int(float value) { return emulator_bit_cast<int>(value); }
inline unsigned __float_as_uint(float value) { return emulator_bit_cast<unsigned>(value); }

// The GPU's rsqrtf is an approximation (2 ulp); 1/√x here. Kernels must not depend on
// the last bit of it (the parity tests' tolerances allow for it).
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
// Rounded multiply and add that the compiler never fuses into an FMA (the CPU build is
// not fused either: without -mfma there is no FMA instruction to fuse into).
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }

template <typename T>
inline uint32_t emulator_bits(T value) { return emulator_bit_cast<uint32_t>(value); }
template <typename T>
inline T emulator_from_bits(uint32_t bits) { return emulator_bit_cast<T>(bits); }

template <typename T>
inline T __shfl_sync(unsigned mask, T value, int lane, int width = 32) {
  return emulator_from_bits<T>(emulator::shuffle(mask, emulator_bits(value), emulator::Shuffle::index, lane, width));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return emulator_from_bits<T>(emulator::shuffle(mask, emulator_bits(value), emulator::Shuffle::up, (int)delta, width));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return emulator_from_bits<T>(emulator::shuffle(mask, emulator_bits(value), emulator::Shuffle::down, (int)delta, width));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return emulator_from_bits<T>(
      emulator::shuffle(mask, emulator_bits(value), emulator::Shuffle::exclusive_or, lane_mask, width));
}

// The kernels' launch rules (launch_rules.cuh) end the thread and fail the launch.
#define QUORUM_EMULATED 1
#define QUORUM_REQUIREMENT_FAILED(kernel, message) emulator::requirement_failed(kernel, message)
