// optimizer.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/optimizer.cu"
#include "../Registration.h"

void emulator_register_optimizer() {
  emulator::Module module{"optimizer.cu", {}};
  EMULATE(sgd_step, loop);
  EMULATE(adamw_step, loop);
  emulator::add_module(std::move(module));
}
