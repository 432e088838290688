// residual.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/residual.cu"
#include "../Registration.h"

void emulator_register_residual() {
  emulator::Module module{"residual.cu", {}};
  EMULATE(residual_forward, loop);
  EMULATE(scale_samples, loop);
  EMULATE(accumulate, loop);
  emulator::add_module(std::move(module));
}
