// The CPU builds of Sources/CUDA/Kernels: one translation unit a file (Kernels/*.cpp),
// each the .cu source included after prelude.h, with its kernels registered under the
// file's name and how their threads run: `loop` for a kernel with no barrier or shuffle
// (its threads one after another), `fibers` for one that has them. A kernel registered as
// `loop` that reaches a barrier fails its launch and says so; CUDATests checks that every
// kernel of every file is registered here.
#include <utility>

#include "Emulator.h"

void emulator_register_batchnorm_statistics();
void emulator_register_batchnorm_apply();
void emulator_register_batchnorm_backward();
void emulator_register_depthwise();
void emulator_register_im2col3x3();
void emulator_register_global_average_pool();
void emulator_register_residual();
void emulator_register_dropout();
void emulator_register_softmax_cross_entropy();
void emulator_register_optimizer();
void emulator_register_convert();
void emulator_register_reduce();
void emulator_register_training();
void emulator_register_batch_assembly();

namespace emulator {

void register_kernel_modules() {
  emulator_register_batchnorm_statistics();
  emulator_register_batchnorm_apply();
  emulator_register_batchnorm_backward();
  emulator_register_depthwise();
  emulator_register_im2col3x3();
  emulator_register_global_average_pool();
  emulator_register_residual();
  emulator_register_dropout();
  emulator_register_softmax_cross_entropy();
  emulator_register_optimizer();
  emulator_register_convert();
  emulator_register_reduce();
  emulator_register_training();
  emulator_register_batch_assembly();
}

}  // namespace emulator
