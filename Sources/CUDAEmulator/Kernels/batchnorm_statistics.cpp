// batchnorm_statistics.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/batchnorm_statistics.cu"
#include "../Registration.h"

void emulator_register_batchnorm_statistics() {
  emulator::Module module{"batchnorm_statistics.cu", {}};
  EMULATE(batchnorm_statistics, fibers);
  emulator::add_module(std::move(module));
}
