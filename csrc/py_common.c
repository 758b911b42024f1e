#include "py_common.h"

int g_threads = 1;

void raise_status(CoreStatus st, const char *what, const char *detail) {
    switch (st) {
    case CORE_BAD_INPUT:
        PyErr_SetString(PyExc_ValueError, detail);
        break;
    case CORE_NO_SUPERVISED:
        PyErr_SetString(PyExc_ValueError, "labels: no supervised position (every label after the "
                        "first is -100), so the mean loss has no term");
        break;
    case CORE_OUT_OF_MEMORY:
        PyErr_Format(PyExc_MemoryError, "out of memory computing %s", what);
        break;
    case CORE_NOT_FINITE:
        PyErr_Format(PyExc_FloatingPointError, "%s: not finite (a logit or activation overflowed)", what);
        break;
    case CORE_OK:
        break;
    }
}

int check_block(PyObject *o, const char *name, size_t total, PyArrayObject **out) {
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array", name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != NPY_FLOAT32 || PyArray_NDIM(a) != 1 || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISWRITEABLE(a) || (size_t)PyArray_DIM(a, 0) != total) {
        PyErr_Format(PyExc_ValueError, "%s must be a writeable contiguous float32 vector of %zu "
                     "elements", name, total);
        return -1;
    }
    *out = a;
    return 0;
}

const int64_t *check_bt(PyObject *o, const char *name, int *B, int *T) {
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array", name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (PyArray_TYPE(a) != NPY_INT64 || PyArray_NDIM(a) != 2 || !PyArray_IS_C_CONTIGUOUS(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be a contiguous int64 array of shape (batch, "
                     "length)", name);
        return NULL;
    }
    int b = (int)PyArray_DIM(a, 0), t = (int)PyArray_DIM(a, 1);
    if (*B < 0) { *B = b; *T = t; }
    if (b != *B || t != *T) {
        PyErr_Format(PyExc_ValueError, "%s has shape (%d, %d) but input_ids has (%d, %d)", name, b, t,
                     *B, *T);
        return NULL;
    }
    return (const int64_t *)PyArray_DATA(a);
}

int check_range(const int64_t *x, int B, int T, int64_t lo, int64_t hi, int64_t except,
                       const char *name, const char *what) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t v = x[(size_t)b * T + t];
            if ((v < lo || v >= hi) && v != except) {
                PyErr_Format(PyExc_ValueError, "%s[%d, %d] = %lld is outside %s [%lld, %lld)", name, b,
                             t, (long long)v, what, (long long)lo, (long long)hi);
                return -1;
            }
        }
    return 0;
}
