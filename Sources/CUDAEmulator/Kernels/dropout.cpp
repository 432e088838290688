// dropout.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/dropout.cu"
#include "../Registration.h"

void emulator_register_dropout() {
  emulator::Module module{"dropout.cu", {}};
  EMULATE(dropout_forward, loop);
  EMULATE(dropout_backward, loop);
  emulator::add_module(std::move(module));
}
