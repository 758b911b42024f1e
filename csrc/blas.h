/* The one place that names the BLAS library. Built against scipy-openblas32 (symbols
 * prefixed scipy_) by default, or a system OpenBLAS with COCONUT_SYSTEM_BLAS. */
#ifndef COCONUT_BLAS_H
#define COCONUT_BLAS_H

void blas_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Who runs matrix products in parallel: 0 = our OpenMP threads split each product
 * and OpenBLAS runs single-threaded (the default: one thread pool, no contention);
 * 1 = OpenBLAS's own threads. */
int blas_threads_mode(void);
void blas_set_threads_mode(int mode, int n_threads);

const char *blas_corename(void);
const char *blas_config(void);
int blas_num_threads(void);

#endif
