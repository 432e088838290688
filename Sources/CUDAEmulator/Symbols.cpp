// The emulator's public face: entry points by library and name, as dlsym would give them
// from the real libraries, and the module registry the kernel files fill.
#include <mutex>

#include "CUDAEmulator.h"
#include "Emulator.h"

namespace emulator {

void register_kernel_modules();  // Kernels.cpp

namespace {

struct Registry {
  std::map<std::string, SymbolTable> libraries;
  std::map<std::string, Module> modules;
};

Registry& registry() {
  static Registry* instance = [] {
    auto* r = new Registry;
    add_driver_symbols(r->libraries["cuda"]);
    add_nvrtc_symbols(r->libraries["nvrtc"]);
    add_cublaslt_symbols(r->libraries["cublasLt"]);
    return r;
  }();
  return *instance;
}

std::once_flag modules_registered;

}  // namespace

const Module* find_module(const std::string& file) {
  std::call_once(modules_registered, register_kernel_modules);
  auto found = registry().modules.find(file);
  return found == registry().modules.end() ? nullptr : &found->second;
}

void add_module(Module module) {
  std::string file = module.file;
  registry().modules[file] = std::move(module);
}

}  // namespace emulator

extern "C" void* quorum_emulator_symbol(const char* library, const char* name) {
  auto& libraries = emulator::registry().libraries;
  auto found = libraries.find(library);
  if (found == libraries.end()) return nullptr;
  auto symbol = found->second.find(name);
  return symbol == found->second.end() ? nullptr : symbol->second;
}
