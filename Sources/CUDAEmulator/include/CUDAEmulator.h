// The emulated CUDA device: stand-ins for the CUDA driver, NVRTC and cuBLASLt that run
// Quorum's kernels on the CPU, from the same .cu sources, with checks a GPU does not make.
// Swift's CUDA module asks for entry points by name here instead of through dlsym, so the
// same Swift code runs against the real libraries or these (docs/cuda.md).
#ifndef QUORUM_CUDA_EMULATOR_H
#define QUORUM_CUDA_EMULATOR_H

#ifdef __cplusplus
extern "C" {
#endif

/// The stand-in for `name` in `library` ("cuda", "nvrtc" or "cublasLt"), or NULL where
/// the emulator has none (the caller reports it as a missing entry point).
void *quorum_emulator_symbol(const char *library, const char *name);

/// The race check: every launch runs twice, the second time with blocks and threads in
/// reverse order, from the same starting memory, and the outputs must agree bit for bit.
/// On by default; QUORUM_EMULATOR_CHECKS=fast turns it off at start.
void quorum_emulator_set_race_check(int enabled);
int quorum_emulator_race_check(void);

/// How many devices the emulated driver shows (1 to 16; QUORUM_EMULATOR_DEVICES at start,
/// default 1). Each has its own context and memory of the same size.
void quorum_emulator_set_device_count(int count);

/// Sets each device's size in bytes (QUORUM_EMULATOR_MEMORY at start); returns the
/// previous size.
unsigned long long quorum_emulator_set_memory(unsigned long long bytes);

/// Kernel launches the host has made (cuLaunchKernel calls, captured ones included; the
/// launches a graph replays are not counted), and graph launches (cuGraphLaunch), since
/// the start: a recorded training step replays with one graph launch and no kernel launch.
unsigned long long quorum_emulator_host_kernel_launches(void);
unsigned long long quorum_emulator_graph_launches(void);

/// Bytes of device memory allocated and not yet freed (on every device).
unsigned long long quorum_emulator_live_bytes(void);

#ifdef __cplusplus
}
#endif

#endif
