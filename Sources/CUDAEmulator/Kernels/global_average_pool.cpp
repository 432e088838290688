// global_average_pool.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/global_average_pool.cu"
#include "../Registration.h"

void emulator_register_global_average_pool() {
  emulator::Module module{"global_average_pool.cu", {}};
  EMULATE(global_average_pool_forward, loop);
  EMULATE(global_average_pool_backward, loop);
  emulator::add_module(std::move(module));
}
