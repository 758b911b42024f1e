/* What the binding files (module.c: the Core type; py_functions.c: the module's
 * functions) share: the thread count, the GIL release, argument checks, and statuses
 * turned into Python exceptions. */
#ifndef COCONUT_PY_COMMON_H
#define COCONUT_PY_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
/* one NumPy API table for the whole extension; module.c imports it */
#define PY_ARRAY_UNIQUE_SYMBOL coconut_ARRAY_API
#ifndef COCONUT_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Threads of every compute call (set_num_threads; OMP_NUM_THREADS at import). */
extern int g_threads;

/* Runs the statements without the GIL on the module's thread count (OpenMP keeps that
 * setting per calling thread, so every compute call sets it). */
#define WITHOUT_GIL(...)                    \
    do {                                    \
        Py_BEGIN_ALLOW_THREADS              \
        omp_set_num_threads(g_threads);     \
        __VA_ARGS__;                        \
        Py_END_ALLOW_THREADS                \
    } while (0)

/* The Python exception of a failed core status. `what` names the computation and its
 * batch; `detail` is the core's message for CORE_BAD_INPUT. */
void raise_status(CoreStatus st, const char *what, const char *detail);

/* A writeable contiguous float32 vector of `total` elements; 0, or -1 with an error set. */
int check_block(PyObject *o, const char *name, size_t total, PyArrayObject **out);

/* A (B, T) int64 C-contiguous array; B, T taken from the first one checked (*B < 0). */
const int64_t *check_bt(PyObject *o, const char *name, int *B, int *T);

/* Every x[b, t] in [lo, hi) or equal to `except`; 0, or -1 with a ValueError naming it. */
int check_range(const int64_t *x, int B, int T, int64_t lo, int64_t hi, int64_t except,
                const char *name, const char *what);

/* The module's functions, beside the Core type (py_functions.c). */
extern PyMethodDef py_functions[];

#endif
