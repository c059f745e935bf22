// CPU feature detection and the ISA level convcore's kernel tables use.
// AVX2/AVX-512 count only when the OS saves their registers (XCR0), not only when CPUID has them.
#pragma once
#include <string>

namespace convcore::cpu {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false,
       avx512dq = false;
  std::string vendor, brand;
  int family = 0;  // CPUID's display family (base + extended): AMD Zen 4 is 0x19, Zen 5 0x1A
};

const CpuFeatures& cpu_features();
Isa best_supported_isa();
// The ISA the kernel tables use: the best supported one, lowered by CONVCORE_ISA=scalar|avx2|avx512
// (a value above what the CPU supports is clamped to it; an unknown value is ignored).
Isa active_isa();
// Test/bench hook: force a level (clamped to what the CPU supports); returns the level now in use.
Isa set_active_isa(Isa requested);
const char* isa_name(Isa isa);

}  // namespace convcore::cpu
