// batchnorm_backward.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/batchnorm_backward.cu"
#include "../Registration.h"

void emulator_register_batchnorm_backward() {
  emulator::Module module{"batchnorm_backward.cu", {}};
  EMULATE(batchnorm_backward_sums, fibers);
  EMULATE(batchnorm_backward_input, loop);
  EMULATE(batchnorm_inference_backward, loop);
  emulator::add_module(std::move(module));
}
