#include "cpu/cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define CONVCORE_X86 1
#endif

namespace convcore::cpu {
namespace {

#ifdef CONVCORE_X86
unsigned long long read_xcr0() {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#ifdef CONVCORE_X86
  unsigned int a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned int max_leaf = a;
  char vendor[13] = {0};
  std::memcpy(vendor, &b, 4); std::memcpy(vendor + 4, &d, 4); std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  const unsigned int base_family = (a >> 8) & 0xF;
  f.family = static_cast<int>(base_family == 0xF ? base_family + ((a >> 20) & 0xFF) : base_family);
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28);
  f.fma = c & (1u << 12);
  bool ymm_os = false, zmm_os = false;
  if (osxsave) {
    unsigned long long xcr0 = read_xcr0();
    ymm_os = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
    zmm_os = (xcr0 & 0xe6) == 0xe6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = avx && ymm_os && (b & (1u << 5));
    f.avx512f = zmm_os && (b & (1u << 16));
    f.avx512dq = zmm_os && (b & (1u << 17));
    f.avx512bw = zmm_os && (b & (1u << 30));
    f.avx512vl = zmm_os && (b & (1u << 31));
  }
  f.fma = f.fma && ymm_os;
  unsigned int brand[12];
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned int i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
    f.brand.assign(reinterpret_cast<const char*>(brand), 48);
    f.brand = f.brand.c_str();
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
  }
#endif
  return f;
}

Isa parse_env(Isa best) {
  const char* env = std::getenv("CONVCORE_ISA");
  if (!env) return best;
  Isa want = best;
  if (std::strcmp(env, "scalar") == 0) want = Isa::Scalar;
  else if (std::strcmp(env, "avx2") == 0) want = Isa::Avx2;
  else if (std::strcmp(env, "avx512") == 0) want = Isa::Avx512;
  return static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

std::atomic<int> g_active{-1};
std::once_flag g_once;

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

Isa best_supported_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma) return Isa::Avx512;
  if (f.avx2 && f.fma) return Isa::Avx2;
  return Isa::Scalar;
}

Isa active_isa() {
  std::call_once(g_once, [] {
    int expected = -1;
    g_active.compare_exchange_strong(expected, static_cast<int>(parse_env(best_supported_isa())));
  });
  return static_cast<Isa>(g_active.load());
}

Isa set_active_isa(Isa requested) {
  active_isa();  // run the one-time initialisation first so it cannot overwrite us
  Isa best = best_supported_isa();
  Isa use = static_cast<int>(requested) < static_cast<int>(best) ? requested : best;
  g_active.store(static_cast<int>(use));
  return use;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "scalar";
  }
}

}  // namespace convcore::cpu
