// depthwise.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/depthwise.cu"
#include "../Registration.h"

void emulator_register_depthwise() {
  emulator::Module module{"depthwise.cu", {}};
  EMULATE(depthwise_forward, loop);
  EMULATE(depthwise_backward_input, loop);
  EMULATE(depthwise_backward_weight, fibers);
  emulator::add_module(std::move(module));
}
