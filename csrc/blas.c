#include "blas.h"

#ifdef COCONUT_SYSTEM_BLAS
#include <cblas.h>
#define SGEMM cblas_sgemm
#define SET_THREADS openblas_set_num_threads
#define GET_THREADS openblas_get_num_threads
#define CORENAME openblas_get_corename
#define CONFIG openblas_get_config
#else
#include <cblas.h> /* scipy-openblas32's header: every symbol carries the scipy_ prefix */
#define SGEMM scipy_cblas_sgemm
#define SET_THREADS scipy_openblas_set_num_threads
#define GET_THREADS scipy_openblas_get_num_threads
#define CORENAME scipy_openblas_get_corename
#define CONFIG scipy_openblas_get_config
#endif

static int threads_mode = 0;

void blas_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    SGEMM(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
          M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int blas_threads_mode(void) { return threads_mode; }

void blas_set_threads_mode(int mode, int n_threads) {
    threads_mode = mode;
    SET_THREADS(mode ? n_threads : 1);
}

const char *blas_corename(void) { return CORENAME(); }
const char *blas_config(void) { return CONFIG(); }
int blas_num_threads(void) { return GET_THREADS(); }
