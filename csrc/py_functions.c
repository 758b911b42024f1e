/* The module's functions: the optimizer step, threads and BLAS settings, the bf16
 * kernel, the row plan's counts, the ProsQA generator's draws, and test hooks. */
#include "py_common.h"

#include <string.h>

#include "adamw.h"
#include "alloc.h"
#include "bf16.h"
#include "blas.h"
#include "cpu.h"
#include "kernels.h"
#include "prosqa_draw.h"
#include "row_plan.h"

static PyObject *py_adamw(PyObject *m, PyObject *args) {
    PyObject *po, *go, *mo, *vo;
    Py_ssize_t start, end;
    float lr, b1, b2, eps, wd;
    double bc1, bc2;
    if (!PyArg_ParseTuple(args, "OOOOnnfffffdd", &po, &go, &mo, &vo, &start, &end, &lr, &b1, &b2,
                          &eps, &wd, &bc1, &bc2))
        return NULL;
    PyArrayObject *arr[4];
    const char *names[4] = {"params", "grads", "exp_avg", "exp_avg_sq"};
    PyObject *objs[4] = {po, go, mo, vo};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (!PyArray_Check(objs[i])) {
            PyErr_Format(PyExc_TypeError, "%s must be a NumPy array", names[i]);
            return NULL;
        }
        if (i == 0) n = PyArray_SIZE((PyArrayObject *)objs[0]);
        if (check_block(objs[i], names[i], n, &arr[i])) return NULL;
    }
    if (start < 0 || end > (Py_ssize_t)n || start > end) {
        PyErr_Format(PyExc_ValueError, "slice [%zd, %zd) is outside the %zu parameters", start, end, n);
        return NULL;
    }
    float *p = PyArray_DATA(arr[0]), *g = PyArray_DATA(arr[1]);
    float *mm = PyArray_DATA(arr[2]), *vv = PyArray_DATA(arr[3]);
    WITHOUT_GIL(adamw_update(p + start, g + start, mm + start, vv + start, (size_t)(end - start), lr, b1,
                             b2, eps, wd, bc1, bc2));
    Py_RETURN_NONE;
}

static PyObject *py_fill_zero(PyObject *m, PyObject *args) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "O", &o)) return NULL;
    PyArrayObject *a;
    if (!PyArray_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "expected a NumPy array");
        return NULL;
    }
    if (check_block(o, "array", PyArray_SIZE((PyArrayObject *)o), &a)) return NULL;
    WITHOUT_GIL(fill_zero(PyArray_DATA(a), PyArray_SIZE(a)));
    Py_RETURN_NONE;
}

/* Seconds for `reps` products of two n x n float32 matrices through the core's own
 * matmul (the same threading as training): the machine's sgemm rate for benchmarks. */
static PyObject *py_sgemm_seconds(PyObject *m, PyObject *args) {
    int n, reps;
    if (!PyArg_ParseTuple(args, "ii", &n, &reps)) return NULL;
    if (n < 1 || reps < 1) {
        PyErr_SetString(PyExc_ValueError, "n and reps must be >= 1");
        return NULL;
    }
    double seconds = 0.0;
    CoreStatus st;
    WITHOUT_GIL(st = matmul_seconds(n, reps, &seconds));
    if (st != CORE_OK) {
        raise_status(st, "the sgemm benchmark's matrices", NULL);
        return NULL;
    }
    return PyFloat_FromDouble(seconds);
}

/* Test hooks: the out-of-memory paths of the core, and its blocks still held. */
static PyObject *py_fail_allocations_after(PyObject *m, PyObject *args) {
    long n;
    if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    return PyLong_FromLong(core_fail_allocations_after(n));
}

static PyObject *py_live_allocations(PyObject *m, PyObject *unused) {
    return PyLong_FromLong(core_live_allocations());
}

/* Test hook: the core's bf16 rounding of a float32 array, as a new array. */
static PyObject *py_bf16_round(PyObject *m, PyObject *args) {
    PyObject *o;
    if (!PyArg_ParseTuple(args, "O", &o)) return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(o, NPY_FLOAT32, 0, 0, NPY_ARRAY_C_CONTIGUOUS);
    if (!a) return NULL;
    PyArrayObject *out = (PyArrayObject *)PyArray_NewLikeArray(a, NPY_CORDER, NULL, 0);
    if (out) bf16_round_copy(PyArray_DATA(out), PyArray_DATA(a), (size_t)PyArray_SIZE(a));
    Py_DECREF(a);
    return (PyObject *)out;
}

/* Test hook: C (M,N) = alpha op(A) op(B) + beta C as a bf16 run computes it (A, B and C
 * float32 matrices; op transposes when the flag is set), into a new array. */
static PyObject *py_matmul_bf16(PyObject *m, PyObject *args) {
    PyObject *oa, *ob, *oc;
    int ta, tb;
    float alpha, beta;
    if (!PyArg_ParseTuple(args, "OOOppff", &oa, &ob, &oc, &ta, &tb, &alpha, &beta)) return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(oa, NPY_FLOAT32, 2, 2, NPY_ARRAY_C_CONTIGUOUS);
    PyArrayObject *b = a ? (PyArrayObject *)PyArray_FROMANY(ob, NPY_FLOAT32, 2, 2, NPY_ARRAY_C_CONTIGUOUS) : NULL;
    PyArrayObject *c = b ? (PyArrayObject *)PyArray_FROMANY(oc, NPY_FLOAT32, 2, 2,
                                                            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ENSURECOPY) : NULL;
    PyObject *out = NULL;
    if (c) {
        int M = (int)PyArray_DIM(a, ta ? 1 : 0), K = (int)PyArray_DIM(a, ta ? 0 : 1);
        int N = (int)PyArray_DIM(b, tb ? 0 : 1), KB = (int)PyArray_DIM(b, tb ? 1 : 0);
        if (K != KB || PyArray_DIM(c, 0) != M || PyArray_DIM(c, 1) != N) {
            PyErr_Format(PyExc_ValueError, "matmul_bf16: op(A) is %dx%d, op(B) %dx%d, C %zdx%zd", M, K, KB, N,
                         (Py_ssize_t)PyArray_DIM(c, 0), (Py_ssize_t)PyArray_DIM(c, 1));
        } else {
            float *A = PyArray_DATA(a), *B = PyArray_DATA(b), *C = PyArray_DATA(c);
            int lda = (int)PyArray_DIM(a, 1), ldb = (int)PyArray_DIM(b, 1);
            WITHOUT_GIL(matmul_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, N));
            out = (PyObject *)c;
            Py_INCREF(out);
        }
    }
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return out;
}

/* Which kernel bf16 products run on: "auto", "emulated" or "native" (see bf16.h). */
static PyObject *py_set_bf16_kernel(PyObject *m, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
    int mode = strcmp(name, "auto") == 0 ? BF16_AUTO : strcmp(name, "emulated") == 0 ? BF16_EMULATED
             : strcmp(name, "native") == 0 ? BF16_NATIVE : -2;
    if (mode == -2) {
        PyErr_Format(PyExc_ValueError, "bf16 kernel must be 'auto', 'emulated' or 'native', got '%s'", name);
        return NULL;
    }
    if (bf16_set_kernel(mode) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "bf16 kernel 'native' needs a CPU with AVX512-BF16 (and an x86-64 "
                        "build); this one has none, so bf16 products stay emulated");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_set_num_threads(PyObject *m, PyObject *args) {
    int n;
    if (!PyArg_ParseTuple(args, "i", &n)) return NULL;
    if (n < 1) {
        PyErr_Format(PyExc_ValueError, "the number of threads must be >= 1, got %d", n);
        return NULL;
    }
    g_threads = n;
    omp_set_num_threads(n);
    blas_set_threads_mode(blas_threads_mode(), n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *m, PyObject *unused) { return PyLong_FromLong(g_threads); }

static PyObject *py_set_gemm_threading(PyObject *m, PyObject *args) {
    const char *mode;
    if (!PyArg_ParseTuple(args, "s", &mode)) return NULL;
    if (strcmp(mode, "openmp") == 0) blas_set_threads_mode(0, g_threads);
    else if (strcmp(mode, "openblas") == 0) blas_set_threads_mode(1, g_threads);
    else {
        PyErr_Format(PyExc_ValueError, "gemm threading must be 'openmp' or 'openblas', got '%s'", mode);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *py_blas_info(PyObject *m, PyObject *unused) {
    return Py_BuildValue("{s:s,s:s,s:s,s:i,s:s,s:i,s:s,s:N,s:N}", "library",
#ifdef COCONUT_SYSTEM_BLAS
                         "system OpenBLAS",
#else
                         "scipy-openblas32",
#endif
                         "config", blas_config(), "core", blas_corename(), "blas_threads",
                         blas_num_threads(), "gemm_threading",
                         blas_threads_mode() ? "openblas" : "openmp", "threads", g_threads,
                         "bf16", bf16_path(), "cpu_avx512_bf16", PyBool_FromLong(cpu_has_avx512_bf16()),
                         "cpu_amx_bf16", PyBool_FromLong(cpu_has_amx_bf16()));
}

/* The row plan of a loss batch (row_plan.h) as counts: its pass bounds, the rows the
 * loss keeps and those whose output is read, and attention's keys and queries per pass
 * and example. For the benchmarks' FLOP counts and the tests' oracle. */
static PyObject *py_row_plan(PyObject *m, PyObject *args, PyObject *kw) {
    static char *kws[] = {"input_ids", "attention_mask", "labels", "mode", "latent_id", "bot_id",
                          "eot_id", "n_layer", "temperature", "iterations", NULL};
    PyObject *ids, *mask, *labels = Py_None;
    ThoughtSpec spec = DEFAULT_SPEC;
    int n_layer = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OiLLLifi", kws, &ids, &mask, &labels, &spec.mode,
                                     &spec.latent_id, &spec.bot_id, &spec.eot_id, &n_layer, &spec.temperature,
                                     &spec.iterations))
        return NULL;
    Batch bt = {0};
    int B = -1, T = -1;
    if (!(bt.ids = check_bt(ids, "input_ids", &B, &T)) || !(bt.mask = check_bt(mask, "attention_mask", &B, &T)) ||
        (labels != Py_None && !(bt.labels = check_bt(labels, "labels", &B, &T))))
        return NULL;
    if (B < 1 || T < 1) {
        PyErr_Format(PyExc_ValueError, "input_ids has an empty shape (%d, %d)", B, T);
        return NULL;
    }
    if (check_range(bt.mask, B, T, 0, 2, 0, "attention_mask", "the values")) return NULL;
    bt.B = B;
    bt.T = T;
    RowPlan plan = {0};
    PyObject *counts[3] = {NULL, NULL, NULL}, *bounds = NULL, *result = NULL;
    char err[256];
    CoreStatus st = check_thought_spec(&spec, INT32_MAX, err, sizeof err);
    if (st == CORE_OK) st = plan_thoughts(&plan, &bt, &spec, err, sizeof err);
    if (st == CORE_OK) {
        plan_passes(&plan, &bt, NULL, 0);
        st = plan_rows(&plan, &bt, n_layer);
    }
    if (st != CORE_OK) {
        raise_status(st, "the row plan", err);
        goto cleanup;
    }
    npy_intp dims[2] = {plan.n_pass, B}, nb = plan.n_pass + 1;
    T = bt.T;  /* a Jacobi batch is unrolled */
    for (int i = 0; i < 3; i++)
        if (!(counts[i] = PyArray_SimpleNew(2, dims, NPY_INT64))) goto cleanup;
    if (!(bounds = PyArray_SimpleNew(1, &nb, NPY_INT64))) goto cleanup;
    for (int i = 0; i <= plan.n_pass; i++) ((int64_t *)PyArray_DATA((PyArrayObject *)bounds))[i] = plan.bounds[i];
    plan_attention_counts(&plan, &bt, PyArray_DATA((PyArrayObject *)counts[0]),
                          PyArray_DATA((PyArrayObject *)counts[1]), PyArray_DATA((PyArrayObject *)counts[2]));
    result = Py_BuildValue("{s:O,s:n,s:n,s:O,s:O,s:O}", "bounds", bounds,
                           "rows", (Py_ssize_t)rows_first(&bt.rows, T), "out_rows",
                           (Py_ssize_t)rows_first(&bt.out_rows, T), "keys", counts[0], "queries", counts[1],
                           "out_queries", counts[2]);
cleanup:
    for (int i = 0; i < 3; i++) Py_XDECREF(counts[i]);
    Py_XDECREF(bounds);
    plan_free(&plan);
    return result;
}

static PyObject *int_list(const int *v, int n) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyObject *x = PyLong_FromLong(v[i]);
        if (!x) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, x);
    }
    return list;
}

/* One draw as (symbols, edges, sentence order, options swapped, path, root, target, neg_target). */
static PyObject *draw_tuple(const ProsQADraw *d) {
    PyObject *edges = PyList_New(d->n_edges);
    for (int e = 0; edges && e < d->n_edges; e++) {
        PyObject *pair = Py_BuildValue("(ii)", d->edges[2 * e], d->edges[2 * e + 1]);
        if (!pair) {
            Py_CLEAR(edges);
            break;
        }
        PyList_SET_ITEM(edges, e, pair);
    }
    PyObject *symbols = int_list(d->symbol, d->n_nodes), *order = int_list(d->order, d->n_edges);
    PyObject *path = int_list(d->path, d->path_len), *result = NULL;
    if (edges && symbols && order && path)
        result = Py_BuildValue("(OOOOOiii)", symbols, edges, order, d->options_swapped ? Py_True : Py_False,
                               path, d->root, d->target, d->neg_target);
    Py_XDECREF(edges), Py_XDECREF(symbols), Py_XDECREF(order), Py_XDECREF(path);
    return result;
}

static PyObject *py_prosqa_draws(PyObject *m, PyObject *args) {
    PyObject *seeds;
    ProsQADrawSettings s;
    if (!PyArg_ParseTuple(args, "O!(iddddiidiiiiii)", &PyList_Type, &seeds, &s.grown_nodes, &s.mean_parents,
                          &s.p_only_entity_family, &s.p_only_other_family, &s.depth_weight, &s.min_steps,
                          &s.max_steps, &s.p_root_id_one, &s.max_parents, &s.min_nodes, &s.max_nodes,
                          &s.min_edges, &s.n_persons, &s.n_concepts))
        return NULL;
    if (s.grown_nodes > PROSQA_MAX_GROWN_NODES || s.n_persons < 0 || s.n_concepts < 0) {
        PyErr_Format(PyExc_ValueError, "prosqa_draws: grown_nodes must be at most %d and the pools' sizes >= 0",
                     PROSQA_MAX_GROWN_NODES);
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(seeds);
    PyObject *result = PyList_New(n);
    ProsQAWork *work = result ? prosqa_work_new(&s) : NULL;
    if (result && !work) PyErr_NoMemory();
    for (Py_ssize_t i = 0; work && i < n; i++) {
        PyObject *seed = PyList_GET_ITEM(seeds, i);
        if (!PyBytes_Check(seed) || PyBytes_GET_SIZE(seed) == 0) {
            PyErr_Format(PyExc_TypeError, "prosqa_draws: seed %zd is not a non-empty bytes object", i);
            break;
        }
        PyRandom rng;
        py_random_seed_bytes(&rng, (const unsigned char *)PyBytes_AS_STRING(seed), (size_t)PyBytes_GET_SIZE(seed));
        ProsQADraw draw;
        int got = prosqa_draw(&rng, &s, work, &draw);
        if (got < 0) {
            PyErr_Format(PyExc_ValueError, "generate_prosqa: name pools too small for a graph of %d nodes",
                         draw.n_nodes);
            break;
        }
        if (!got) {
            PyErr_Format(PyExc_ValueError, "generate_prosqa: no graph qualified in %d draws: the settings' "
                         "node and edge bounds may exclude every graph", PROSQA_MAX_TRIES);
            break;
        }
        PyObject *item = draw_tuple(&draw);
        if (!item) break;
        PyList_SET_ITEM(result, i, item);
    }
    prosqa_work_free(work);
    if (PyErr_Occurred()) Py_CLEAR(result);
    return result;
}

PyMethodDef py_functions[] = {
    {"adamw", py_adamw, METH_VARARGS,
     "adamw(params, grads, exp_avg, exp_avg_sq, start, end, lr, b1, b2, eps, wd, bc1, bc2)"},
    {"fill_zero", py_fill_zero, METH_VARARGS, "Zero a float32 array in parallel."},
    {"sgemm_seconds", py_sgemm_seconds, METH_VARARGS, "sgemm_seconds(n, reps): timing of n x n products."},
    {"set_num_threads", py_set_num_threads, METH_VARARGS, "Threads for all C compute."},
    {"_matmul_bf16", py_matmul_bf16, METH_VARARGS,
     "_matmul_bf16(A, B, C, trans_a, trans_b, alpha, beta): a bf16 run's product, as a new array. For tests."},
    {"set_bf16_kernel", py_set_bf16_kernel, METH_VARARGS, "'auto', 'emulated' or 'native': bf16 products."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "Threads for all C compute."},
    {"set_gemm_threading", py_set_gemm_threading, METH_VARARGS,
     "'openmp' (default) or 'openblas': who parallelises matrix products."},
    {"blas_info", py_blas_info, METH_NOARGS, "The BLAS library, its core kernels and threads."},
    {"_fail_allocations_after", py_fail_allocations_after, METH_VARARGS,
     "_fail_allocations_after(n): the core's allocation after the next n fails, once (n < 0: "
     "never). Returns the previous countdown, -1 if none was pending. For tests."},
    {"_bf16_round", py_bf16_round, METH_VARARGS,
     "_bf16_round(array): float32 values rounded to bf16 (kept in float32) as the core does. For tests."},
    {"_live_allocations", py_live_allocations, METH_NOARGS,
     "Blocks the core has allocated and not freed. For tests."},
    {"row_plan", (PyCFunction)(void (*)(void))py_row_plan, METH_VARARGS | METH_KEYWORDS,
     "row_plan(input_ids, attention_mask, labels=None, mode, latent_id, bot_id, eot_id, n_layer=1) -> "
     "{bounds, rows, out_rows, keys, queries, out_queries}: the loss's row plan of a batch; keys, "
     "queries (layers before the last) and out_queries (the last layer) are attention's (pass, example) counts"},
    {"prosqa_draws", py_prosqa_draws, METH_VARARGS,
     "prosqa_draws(seeds, settings) -> [(symbols, edges, sentence order, options swapped, path, root, target, "
     "neg_target)]: coconut.data.prosqa_generator's draw for each seed (the bytes its random.Random seeds "
     "with), settings: ProsQASettings' fields (2**31 - 1 for None) and the name pools' sizes"},
    {NULL}};
