/* What the CPU can run, and so which kernel bf16 products use (bf16.h, bf16_gemm.h). */
#ifndef COCONUT_CPU_H
#define COCONUT_CPU_H

int cpu_has_avx512_bf16(void);
int cpu_has_amx_bf16(void);

/* 1 when this build has the native bf16 kernel (bf16_gemm.h) and the CPU and OS can
 * run it. */
int bf16_gemm_available(void);

/* Which kernel bf16 products use, process-wide: BF16_AUTO (the default: native where the
 * CPU has it), BF16_EMULATED or BF16_NATIVE. Setting BF16_NATIVE where it is not
 * available returns -1 and changes nothing. */
enum { BF16_AUTO = -1, BF16_EMULATED = 0, BF16_NATIVE = 1 };
int bf16_set_kernel(int mode);
int bf16_native(void);

/* What a bf16 run computes on, in words, for the logs. */
const char *bf16_path(void);

#endif
