// training.cu compiled for the CPU (see Kernels.cpp).
#include "../prelude.h"
#include "../../CUDA/Kernels/training.cu"
#include "../Registration.h"

void emulator_register_training() {
  emulator::Module module{"training.cu", {}};
  EMULATE(running_statistics, loop);
  EMULATE(stochastic_depth_scales, loop);
  EMULATE(sum_of_squares, fibers);
  EMULATE(scale_to_norm, loop);
  EMULATE(exponential_moving_average, loop);
  emulator::add_module(std::move(module));
}
