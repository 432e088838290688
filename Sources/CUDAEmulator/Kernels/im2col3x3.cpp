// im2col3x3.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/im2col3x3.cu"
#include "../Registration.h"

void emulator_register_im2col3x3() {
  emulator::Module module{"im2col3x3.cu", {}};
  EMULATE(im2col3x3, loop);
  EMULATE(col2im3x3, loop);
  emulator::add_module(std::move(module));
}
