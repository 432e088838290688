// softmax_cross_entropy.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/softmax_cross_entropy.cu"
#include "../Registration.h"

void emulator_register_softmax_cross_entropy() {
  emulator::Module module{"softmax_cross_entropy.cu", {}};
  EMULATE(cross_entropy_weights, fibers);
  EMULATE(softmax_cross_entropy, fibers);
  emulator::add_module(std::move(module));
}
