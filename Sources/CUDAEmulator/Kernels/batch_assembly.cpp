// batch_assembly.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/batch_assembly.cu"
#include "../Registration.h"

void emulator_register_batch_assembly() {
  emulator::Module module{"batch_assembly.cu", {}};
  EMULATE(assemble_images, loop);
  emulator::add_module(std::move(module));
}
