// batchnorm_apply.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/batchnorm_apply.cu"
#include "../Registration.h"

void emulator_register_batchnorm_apply() {
  emulator::Module module{"batchnorm_apply.cu", {}};
  EMULATE(batchnorm_apply_f32, loop);
  EMULATE(batchnorm_apply_bf16, loop);
  emulator::add_module(std::move(module));
}
