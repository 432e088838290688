// reduce.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/reduce.cu"
#include "../Registration.h"

void emulator_register_reduce() {
  emulator::Module module{"reduce.cu", {}};
  EMULATE(sum_in_order, fibers);
  EMULATE(column_sums, fibers);
  emulator::add_module(std::move(module));
}
