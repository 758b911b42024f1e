#include "cpu.h"

#include <cpuid.h>
#include <stdatomic.h>
#include <stddef.h>

#include "bf16_gemm.h"

/* CPUID leaf 7: sub-leaf 1 EAX bit 5 is AVX512-BF16, sub-leaf 0 EDX bit 22 AMX-BF16. */
static int cpuid7(unsigned sub, int reg, int bit) {
    unsigned r[4];
    if (__get_cpuid_max(0, NULL) < 7 || !__get_cpuid_count(7, sub, &r[0], &r[1], &r[2], &r[3])) return 0;
    return (r[reg] >> bit) & 1;
}

int cpu_has_avx512_bf16(void) { return cpuid7(1, 0, 5); }
int cpu_has_amx_bf16(void) { return cpuid7(0, 3, 22); }

int bf16_gemm_available(void) {
#if BF16_GEMM_BUILT
    /* asked once: CPUID traps to the hypervisor on a virtual machine (two threads asking
     * at once store the same answer). __builtin_cpu_supports checks that the OS saves
     * the AVX-512 registers. */
    static atomic_int known = -1;
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k < 0) {
        k = cpu_has_avx512_bf16() && __builtin_cpu_supports("avx512f");
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k;
#else
    return 0;
#endif
}

static int kernel_mode = BF16_AUTO;

int bf16_set_kernel(int mode) {
    if (mode == BF16_NATIVE && !bf16_gemm_available()) return -1;
    kernel_mode = mode;
    return 0;
}

int bf16_native(void) {
    return kernel_mode == BF16_NATIVE || (kernel_mode == BF16_AUTO && bf16_gemm_available());
}

const char *bf16_path(void) {
    return bf16_native()
        ? "native: AVX512-BF16 products (VDPBF16PS) with fp32 sums; attention's per-head products emulated"
        : "emulated: operands rounded to bf16, exact products summed in fp32 by sgemm";
}
