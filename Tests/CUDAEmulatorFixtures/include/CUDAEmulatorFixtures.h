// Deliberately broken kernels, registered on the emulated device as the module
// "broken_kernels.cu", so that each of the emulator's checks is seen to fire.
#ifndef QUORUM_CUDA_EMULATOR_FIXTURES_H
#define QUORUM_CUDA_EMULATOR_FIXTURES_H
#ifdef __cplusplus
extern "C" {
#endif
void quorum_emulator_register_broken_kernels(void);
#ifdef __cplusplus
}
#endif
#endif
