// The emulated CUDA device's internals, shared by its parts (driver, NVRTC, cuBLASLt,
// the kernel registry and the block scheduler). Nothing here is seen by Swift: the
// public face is include/CUDAEmulator.h, a symbol table with the real libraries' names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace emulator {

// MARK: - Failures

/// Records why the last call of this thread failed, returned by the stand-ins'
/// error-string functions (cuGetErrorString, nvrtcGetErrorString, cublasLtGetStatusString)
/// when they are asked about that status: the emulator's checks say more than a code.
void fail(int status, const std::string& detail);
/// The detail recorded for `status` on this thread, or nullptr if the last failure had
/// another status.
const char* detail_for(int status);

// MARK: - Device memory

/// Device memory is host memory handed out by the emulator, so a device pointer is an
/// address; every allocation is tracked so that a launch or a copy can refuse a pointer
/// that is not inside a live one (a host pointer, a freed buffer).
struct Allocation {
  uintptr_t base;
  size_t bytes;
};

/// Whether [address, address + bytes) lies inside one live allocation; otherwise `why`
/// says what the address is ("a freed device buffer", "host memory, not device memory").
bool is_device_range(uintptr_t address, size_t bytes, std::string* why);
/// Whether `address` lies inside a live allocation (any length).
bool is_device_pointer(uintptr_t address, std::string* why);

// MARK: - Kernels

/// How a kernel's threads are run: a kernel with no barrier or warp shuffle as a plain
/// loop over its threads; one that has them as fibers (each thread its own stack, switched
/// at every __syncthreads and __shfl_*_sync).
enum class Schedule { loop, fibers };

/// One kernel of a module, as the registry knows it.
struct Kernel {
  std::string name;
  Schedule schedule;
  /// Calls the kernel for the current thread with its arguments unpacked from
  /// `params` (cuLaunchKernel's kernelParams).
  void (*invoke)(void** params);
  /// Checks every pointer argument (non-null must be device memory; false with `why`)
  /// and collects those the kernel may write through (pointers to non-const), whose
  /// allocations the race check compares.
  bool (*inspect)(void** params, std::vector<uintptr_t>* writable, std::string* why);
  int parameter_count;
  /// Each parameter's size in bytes, so that a captured launch keeps its own copy of its
  /// arguments (the caller's `kernelParams` are gone by the time a graph replays).
  std::vector<size_t> parameter_sizes;
};

/// A "compiled" module: the CPU build of one .cu file, found by its file name.
struct Module {
  std::string file;
  std::map<std::string, Kernel> kernels;
};

/// The module built from `file` ("depthwise.cu"), or nullptr.
const Module* find_module(const std::string& file);
/// Adds a module (the registry calls this for every kernel file at start-up; tests add
/// deliberately broken ones through quorum_emulator_register_module).
void add_module(Module module);

/// A launch's geometry.
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  unsigned long long count() const { return (unsigned long long)x * y * z; }
};

/// Runs every block of a launch, in order or in reverse (blocks and the threads in them),
/// on the calling thread. Returns 0 or a CUDA status, with `fail` called for the reason.
int run_grid(const Kernel& kernel, Dim3 grid, Dim3 block, void** params, bool reversed);

// MARK: - Stream capture (CUDA graphs)

/// If `stream` is being captured, appends `work` to its capture instead of running it and
/// returns true: the work then runs at every launch of a graph made from the capture. False
/// when the stream runs its work at the call (the caller runs it). cuBLASLt's matmul
/// captures through this, as the driver's launches and device copies do.
bool capture_if_capturing(void* stream, std::function<int()> work);

// MARK: - Settings

/// The checks that cost time: the race check (every launch run twice, the second time
/// in reverse order, outputs compared bit for bit). On unless QUORUM_EMULATOR_CHECKS=fast.
bool race_check_enabled();
void set_race_check(bool enabled);

/// The bytes new allocations are filled with: 0xFF, so every float read before it is
/// written is a NaN (and every integer −1).
constexpr unsigned char poison_byte = 0xFF;

}  // namespace emulator

// MARK: - The stand-in libraries' entry points

namespace emulator {

/// Entry-point name ("cuMemAlloc_v2") → the stand-in's function. Each library's file
/// adds its own; quorum_emulator_symbol looks them up.
using SymbolTable = std::map<std::string, void*>;
void add_driver_symbols(SymbolTable& table);
void add_nvrtc_symbols(SymbolTable& table);
void add_cublaslt_symbols(SymbolTable& table);

}  // namespace emulator
