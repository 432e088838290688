// NVRTC's stand-in: "compiling" a kernel file finds the CPU build of the same file (by
// its name: every file of Sources/CUDA/Kernels is compiled into the emulator with the
// prelude), and the "CUBIN" it hands out names that build for cuModuleLoadData. The real
// NVRTC still compiles every kernel for sm_80 and sm_90 in CI (KernelCompilationTests).
#include <cstring>
#include <string>

#include "Emulator.h"

namespace emulator {
namespace {

using nvrtcResult = int;
constexpr nvrtcResult success = 0, invalid_input = 3, invalid_program = 4, compilation = 6;

struct Program {
  std::string file;
  std::string log;
  std::string image;
};

const char* nvrtcGetErrorString(nvrtcResult status) {
  if (const char* detail = detail_for(status)) return detail;
  switch (status) {
    case success: return "NVRTC_SUCCESS";
    case invalid_input: return "NVRTC_ERROR_INVALID_INPUT";
    case invalid_program: return "NVRTC_ERROR_INVALID_PROGRAM";
    case compilation: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR_INTERNAL_ERROR";
  }
}

nvrtcResult nvrtcVersion(int* major, int* minor) {
  *major = 13;
  *minor = 0;
  return success;
}

nvrtcResult nvrtcCreateProgram(Program** program, const char* source, const char* name, int, const char* const*,
                               const char* const*) {
  if (!program || !source) return invalid_input;
  *program = new Program{name ? name : "default_program", "", ""};
  return success;
}

nvrtcResult nvrtcDestroyProgram(Program** program) {
  if (!program || !*program) return invalid_program;
  delete *program;
  *program = nullptr;
  return success;
}

nvrtcResult nvrtcCompileProgram(Program* program, int count, const char* const* options) {
  if (!program) return invalid_program;
  bool architecture = false;
  for (int i = 0; i < count; ++i)
    architecture = architecture || std::strncmp(options[i], "--gpu-architecture=", 19) == 0 || std::strncmp(options[i], "-arch=", 6) == 0;
  if (!architecture) {
    program->log = "the emulated NVRTC needs --gpu-architecture, as the real one does for a CUBIN";
    return compilation;
  }
  if (!find_module(program->file)) {
    program->log = program->file +
                   ": the emulated device has no CPU build of this file (every file of Sources/CUDA/Kernels is "
                   "compiled into Sources/CUDAEmulator; a source given at run time cannot be)";
    return compilation;
  }
  // The image: a tag, then the file's name (cuModuleLoadData reads both).
  program->image = std::string("QUORUM-EMULATED-MODULE") + '\0' + program->file + '\0';
  return success;
}

nvrtcResult nvrtcGetProgramLogSize(Program* program, size_t* size) {
  if (!program) return invalid_program;
  *size = program->log.size() + 1;
  return success;
}

nvrtcResult nvrtcGetProgramLog(Program* program, char* log) {
  if (!program) return invalid_program;
  std::memcpy(log, program->log.c_str(), program->log.size() + 1);
  return success;
}

nvrtcResult nvrtcGetCUBINSize(Program* program, size_t* size) {
  if (!program || program->image.empty()) return invalid_program;
  *size = program->image.size();
  return success;
}

nvrtcResult nvrtcGetCUBIN(Program* program, char* image) {
  if (!program || program->image.empty()) return invalid_program;
  std::memcpy(image, program->image.data(), program->image.size());
  return success;
}

}  // namespace

void add_nvrtc_symbols(SymbolTable& table) {
  table["nvrtcGetErrorString"] = (void*)&nvrtcGetErrorString;
  table["nvrtcVersion"] = (void*)&nvrtcVersion;
  table["nvrtcCreateProgram"] = (void*)&nvrtcCreateProgram;
  table["nvrtcDestroyProgram"] = (void*)&nvrtcDestroyProgram;
  table["nvrtcCompileProgram"] = (void*)&nvrtcCompileProgram;
  table["nvrtcGetProgramLogSize"] = (void*)&nvrtcGetProgramLogSize;
  table["nvrtcGetProgramLog"] = (void*)&nvrtcGetProgramLog;
  table["nvrtcGetCUBINSize"] = (void*)&nvrtcGetCUBINSize;
  table["nvrtcGetCUBIN"] = (void*)&nvrtcGetCUBIN;
}

}  // namespace emulator
