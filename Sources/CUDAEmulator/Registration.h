// Turns a kernel function into the registry's `Kernel`: a call that unpacks
// cuLaunchKernel's `void** kernelParams` into the function's own parameter types (as the
// driver does from the CUBIN's parameter table), and a check of every pointer parameter.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "Emulator.h"

namespace emulator {

template <typename Function>
struct Signature;

template <typename... Parameters>
struct Signature<void (*)(Parameters...)> {
  static constexpr int count = (int)sizeof...(Parameters);

  template <auto function, size_t... index>
  static void call(void** params, std::index_sequence<index...>) {
    function(*static_cast<std::decay_t<Parameters>*>(params[index])...);
  }

  template <auto function>
  static void invoke(void** params) {
    call<function>(params, std::index_sequence_for<Parameters...>{});
  }

  template <typename Parameter>
  static bool inspect_one(void* slot, int index, std::vector<uintptr_t>* writable, std::string* why) {
    if constexpr (std::is_pointer_v<Parameter>) {
      uintptr_t address = reinterpret_cast<uintptr_t>(*static_cast<Parameter*>(slot));
      if (address == 0) return true;  // optional inputs (no class weights, no stochastic depth)
      std::string what;
      if (!is_device_pointer(address, &what)) {
        *why = "parameter " + std::to_string(index) + " is " + what;
        return false;
      }
      if constexpr (!std::is_const_v<std::remove_pointer_t<Parameter>>) writable->push_back(address);
    }
    return true;
  }

  template <size_t... index>
  static bool inspect_all(void** params, std::vector<uintptr_t>* writable, std::string* why, std::index_sequence<index...>) {
    bool ok = true;
    ((ok = ok && inspect_one<std::decay_t<Parameters>>(params[index], (int)index, writable, why)), ...);
    return ok;
  }

  static std::vector<size_t> sizes() { return {sizeof(std::decay_t<Parameters>)...}; }

  static bool inspect(void** params, std::vector<uintptr_t>* writable, std::string* why) {
    return inspect_all(params, writable, why, std::index_sequence_for<Parameters...>{});
  }
};

template <auto function>
Kernel make_kernel(const char* name, Schedule schedule) {
  using Sig = Signature<decltype(function)>;
  return Kernel{name, schedule, &Sig::template invoke<function>, &Sig::inspect, Sig::count, Sig::sizes()};
}

}  // namespace emulator

/// In a module's registration: EMULATE(kernel_name, loop) or EMULATE(kernel_name, fibers).
#define EMULATE(kernel, schedule) \
  module.kernels[#kernel] = emulator::make_kernel<&kernel>(#kernel, emulator::Schedule::schedule)
