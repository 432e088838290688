// convert.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/convert.cu"
#include "../Registration.h"

void emulator_register_convert() {
  emulator::Module module{"convert.cu", {}};
  EMULATE(float_to_bfloat16, loop);
  EMULATE(bfloat16_to_float, loop);
  emulator::add_module(std::move(module));
}
