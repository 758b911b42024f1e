/* CPython/NumPy bindings of the C core: argument checks, GIL release, exceptions.
 * Nothing here computes; it validates, then calls gpt2/passes/thoughts/adamw, and turns
 * the status they return into a Python exception. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "adamw.h"
#include "alloc.h"
#include "bf16.h"
#include "blas.h"
#include "cpu.h"
#include "generate.h"
#include "gpt2.h"
#include "kernels.h"
#include "row_plan.h"
#include "status.h"
#include "thoughts.h"

static int g_threads = 1;

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
static void raise_status(CoreStatus st, const char *what, const char *detail) {
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

typedef struct {
    PyObject_HEAD
    GPT2Shape shape;
    ParamLayout lay;
    PyArrayObject *params;   /* float32 (total,) */
    PyArrayObject *grads;    /* float32 (total,) or NULL */
    Acts acts;
    int busy;
} CoreObject;

/* ------------------------------------------------------------------ checks */

static int check_block(PyObject *o, const char *name, size_t total, PyArrayObject **out) {
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

/* A (B, T) int64 C-contiguous array; B, T taken from the first one checked. */
static const int64_t *check_bt(PyObject *o, const char *name, int *B, int *T) {
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

static int check_range(const int64_t *x, int B, int T, int64_t lo, int64_t hi, int64_t except,
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

/* Parses and checks the batch tensors shared by every entry point. */
static int parse_batch(CoreObject *self, PyObject *ids, PyObject *mask, PyObject *pos,
                       PyObject *labels, Batch *bt) {
    int B = -1, T = -1;
    memset(bt, 0, sizeof(*bt));
    if (!(bt->ids = check_bt(ids, "input_ids", &B, &T))) return -1;
    if (!(bt->mask = check_bt(mask, "attention_mask", &B, &T))) return -1;
    if (!(bt->pos = check_bt(pos, "position_ids", &B, &T))) return -1;
    if (labels != Py_None && !(bt->labels = check_bt(labels, "labels", &B, &T))) return -1;
    if (B < 1 || T < 1) {
        PyErr_Format(PyExc_ValueError, "input_ids has an empty shape (%d, %d)", B, T);
        return -1;
    }
    if (T > self->shape.n_positions) {
        PyErr_Format(PyExc_ValueError, "sequence length %d exceeds the model's n_positions = %d", T,
                     self->shape.n_positions);
        return -1;
    }
    if (check_range(bt->ids, B, T, 0, self->shape.vocab_size, 0, "input_ids", "the vocabulary"))
        return -1;
    if (check_range(bt->mask, B, T, 0, 2, 0, "attention_mask", "the values")) return -1;
    if (check_range(bt->pos, B, T, 0, self->shape.n_positions, 0, "position_ids",
                    "the position table"))
        return -1;
    if (bt->labels && check_range(bt->labels, B, T, 0, self->shape.vocab_size, -100, "labels",
                                  "the vocabulary (or -100)"))
        return -1;
    bt->B = B;
    bt->T = T;
    bt->rows = bt->out_rows = rows_full(B, T);
    return 0;
}

static int enter(CoreObject *self, int need_grads) {
    if (!self->params) {
        PyErr_SetString(PyExc_RuntimeError, "parameters are not bound (call bind first)");
        return -1;
    }
    if (need_grads && !self->grads) {
        PyErr_SetString(PyExc_RuntimeError, "gradients are not bound");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "this model is already computing in another thread");
        return -1;
    }
    self->busy = 1;
    return 0;
}

/* The weights for products (c->pm) are set by product_weights, without the GIL. */
static void make_ctx(CoreObject *self, Ctx *c, float p_drop, unsigned long long seed, int bf16) {
    memset(c, 0, sizeof(*c));
    c->shape = &self->shape;
    param_pointers(&self->lay, (float *)PyArray_DATA(self->params), &c->p);
    if (self->grads) param_pointers(&self->lay, (float *)PyArray_DATA(self->grads), &c->g);
    c->a = &self->acts;
    c->drop.p = p_drop;
    c->drop.seed = seed;
    c->bf16 = bf16;
}

/* ------------------------------------------------------------------ Core type */

static int Core_init(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kws[] = {"n_layer", "n_head", "n_embd", "vocab_size", "n_positions", NULL};
    GPT2Shape s;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiiii", kws, &s.n_layer, &s.n_head, &s.n_embd,
                                     &s.vocab_size, &s.n_positions))
        return -1;
    if (s.n_layer < 0 || s.n_head < 1 || s.n_embd < 1 || s.vocab_size < 1 || s.n_positions < 1) {
        PyErr_SetString(PyExc_ValueError, "n_layer >= 0 and n_head, n_embd, vocab_size, n_positions "
                        ">= 1 are required");
        return -1;
    }
    if (s.n_embd % s.n_head) {
        PyErr_Format(PyExc_ValueError, "n_embd = %d is not divisible by n_head = %d", s.n_embd, s.n_head);
        return -1;
    }
    acts_free(&self->acts);
    self->shape = s;
    param_layout(&s, &self->lay);
    Py_CLEAR(self->params);
    Py_CLEAR(self->grads);
    return 0;
}

static void Core_dealloc(CoreObject *self) {
    acts_free(&self->acts);
    Py_XDECREF(self->params);
    Py_XDECREF(self->grads);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Core_layout(CoreObject *self, PyObject *unused) {
    const ParamLayout *l = &self->lay;
    return Py_BuildValue(
        "{s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}",
        "wte", (Py_ssize_t)l->wte, "wpe", (Py_ssize_t)l->wpe, "ln1_w", (Py_ssize_t)l->ln1_w,
        "ln1_b", (Py_ssize_t)l->ln1_b, "qkv_w", (Py_ssize_t)l->qkv_w, "qkv_b", (Py_ssize_t)l->qkv_b,
        "attproj_w", (Py_ssize_t)l->attproj_w, "attproj_b", (Py_ssize_t)l->attproj_b,
        "ln2_w", (Py_ssize_t)l->ln2_w, "ln2_b", (Py_ssize_t)l->ln2_b, "fc_w", (Py_ssize_t)l->fc_w,
        "fc_b", (Py_ssize_t)l->fc_b, "fcproj_w", (Py_ssize_t)l->fcproj_w,
        "fcproj_b", (Py_ssize_t)l->fcproj_b, "lnf_w", (Py_ssize_t)l->lnf_w,
        "lnf_b", (Py_ssize_t)l->lnf_b, "total", (Py_ssize_t)l->total);
}

static PyObject *Core_bind(CoreObject *self, PyObject *args) {
    PyObject *po, *go = Py_None;
    if (!PyArg_ParseTuple(args, "O|O", &po, &go)) return NULL;
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "cannot rebind while computing");
        return NULL;
    }
    PyArrayObject *p, *g = NULL;
    if (check_block(po, "params", self->lay.total, &p)) return NULL;
    if (go != Py_None && check_block(go, "grads", self->lay.total, &g)) return NULL;
    Py_INCREF(p);
    Py_XSETREF(self->params, p);
    Py_XINCREF(g);
    Py_XSETREF(self->grads, g);
    Py_RETURN_NONE;
}

/* Shared front half of loss(), forward() and generate(): batch, thought slots, passes,
 * arena. */
typedef struct {
    Batch bt;
    RowPlan plan;
} Prepared;

/* Optional extra pass boundaries: a sequence of ints (tests split passes at will). */
static int parse_splits(PyObject *splits, int T, int **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!splits || splits == Py_None) return 0;
    PyObject *seq = PySequence_Fast(splits, "splits must be a sequence of positions");
    if (!seq) return -1;
    int rc = -1;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(seq);
    int *v = core_malloc(sizeof(int) * (size_t)(k ? k : 1));
    if (!v) {
        raise_status(CORE_OUT_OF_MEMORY, "the pass splits", NULL);
        goto cleanup;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        long x = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (x == -1 && PyErr_Occurred()) goto cleanup;
        if (x <= 0 || x >= T) {
            PyErr_Format(PyExc_ValueError, "splits[%zd] = %ld is not inside (0, %d)", i, x, T);
            goto cleanup;
        }
        v[i] = (int)x;
    }
    *out = v;
    *n = (int)k;
    v = NULL;
    rc = 0;
cleanup:
    core_free(v);
    Py_DECREF(seq);
    return rc;
}

/* extra_columns: room in the arena for that many positions after the batch (decoding),
 * so that the activations are laid out once. The caller calls release() in any case. */
static int prepare(CoreObject *self, PyObject *ids, PyObject *mask, PyObject *pos, PyObject *labels,
                   PyObject *splits, ThoughtSpec *spec, int need_backward, int extra_columns, int bf16,
                   Prepared *pr) {
    memset(pr, 0, sizeof(*pr));
    if (spec->mode < MODE_NONE || spec->mode > MODE_CONTINUOUS) {
        PyErr_Format(PyExc_ValueError, "unknown thought mode %d", spec->mode);
        return -1;
    }
    if (parse_batch(self, ids, mask, pos, labels, &pr->bt)) return -1;
    int B = pr->bt.B, T = pr->bt.T;
    char err[256];
    CoreStatus st = plan_thoughts(&pr->plan, &pr->bt, spec, err, sizeof err);
    if (st != CORE_OK) {
        raise_status(st, "the thought slots and passes", err);
        return -1;
    }
    int *extra, n_extra;
    if (parse_splits(splits, T, &extra, &n_extra)) return -1;
    plan_passes(&pr->plan, &pr->bt, extra, n_extra);
    core_free(extra);
    st = acts_reserve(&self->acts, &self->shape, B, T + extra_columns, need_backward, g_threads, bf16);
    if (st != CORE_OK) {
        char what[96];
        snprintf(what, sizeof what, "the activations of a %d x %d batch", B, T + extra_columns);
        raise_status(st, what, NULL);
        return -1;
    }
    return 0;
}

static void release(Prepared *pr) { plan_free(&pr->plan); }

static int plan_rows_or_raise(Prepared *pr, int n_layer) {
    CoreStatus st = plan_rows(&pr->plan, &pr->bt, n_layer);
    if (st != CORE_OK) raise_status(st, "the packed row maps", NULL);
    return st == CORE_OK ? 0 : -1;
}

static PyObject *Core_loss(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kws[] = {"input_ids", "attention_mask", "position_ids", "labels", "mode",
                          "latent_id", "bot_id", "eot_id", "backward", "dropout", "seed",
                          "grad_scale", "splits", "bf16", "packed", NULL};
    PyObject *ids, *mask, *pos, *labels, *splits = NULL;
    ThoughtSpec spec = {-1, -1, -1, MODE_NONE};
    int backward = 1, bf16 = 0, packed = 1;
    float p_drop = 0.0f, grad_scale = 1.0f;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|iLLLpfKfOpp", kws, &ids, &mask, &pos, &labels,
                                     &spec.mode, &spec.latent_id, &spec.bot_id, &spec.eot_id,
                                     &backward, &p_drop, &seed, &grad_scale, &splits, &bf16, &packed))
        return NULL;
    if (labels == Py_None) {
        PyErr_SetString(PyExc_ValueError, "labels are required for the loss");
        return NULL;
    }
    if (!(p_drop >= 0.0f && p_drop < 1.0f)) {
        PyErr_Format(PyExc_ValueError, "dropout must be in [0, 1), got %g", (double)p_drop);
        return NULL;
    }
    if (enter(self, backward)) return NULL;
    Prepared pr;
    PyObject *result = NULL;
    if (prepare(self, ids, mask, pos, labels, splits, &spec, backward, 0, bf16, &pr) == 0 &&
        (!packed || plan_rows_or_raise(&pr, self->shape.n_layer) == 0)) {
        Ctx c;
        make_ctx(self, &c, p_drop, seed, bf16);
        double loss = 0.0;
        long n_sup = 0;
        CoreStatus st;
        WITHOUT_GIL(product_weights(&c, &self->lay); st = run_loss(&c, &pr.bt, pr.plan.bounds, pr.plan.n_pass, backward, grad_scale, &loss, &n_sup));
        if (st == CORE_OK) {
            result = Py_BuildValue("(dl)", loss, n_sup);
        } else {
            char what[96];
            snprintf(what, sizeof what, "the loss of a %d x %d batch", pr.bt.B, pr.bt.T);
            raise_status(st, what, NULL);
        }
    }
    release(&pr);
    self->busy = 0;
    return result;
}

/* The vector fed into each thought slot (the ln_f output of the position before) and
 * where it went, as two new arrays; 0, or -1 with a Python error set. */
static int collect_thoughts(CoreObject *self, const Prepared *pr, PyObject **thoughts, PyObject **where) {
    int B = pr->bt.B, T = pr->bt.T, C = self->shape.n_embd;
    npy_intp n = 0;
    for (size_t i = 0; i < (size_t)B * T; i++) n += pr->plan.is_thought[i];
    npy_intp d1[2] = {n, C}, d2[2] = {n, 2};
    *thoughts = PyArray_SimpleNew(2, d1, NPY_FLOAT32);
    *where = PyArray_SimpleNew(2, d2, NPY_INT64);
    if (!*thoughts || !*where) return -1;
    float *tv = PyArray_DATA((PyArrayObject *)*thoughts);
    int64_t *wv = PyArray_DATA((PyArrayObject *)*where);
    npy_intp k = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            if (pr->plan.is_thought[(size_t)b * T + t]) {
                memcpy(tv + k * C, self->acts.lnf + (size_t)rows_of(&pr->bt.out_rows, b, t - 1) * C, sizeof(float) * C);
                wv[2 * k] = b;
                wv[2 * k + 1] = t;
                k++;
            }
    return 0;
}

static PyObject *Core_forward(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kws[] = {"input_ids", "attention_mask", "position_ids", "mode", "latent_id",
                          "bot_id", "eot_id", "logits", "thoughts", "splits", "bf16", NULL};
    PyObject *ids, *mask, *pos, *splits = NULL;
    ThoughtSpec spec = {-1, -1, -1, MODE_NONE};
    int want_logits = 1, want_thoughts = 0, bf16 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|iLLLppOp", kws, &ids, &mask, &pos, &spec.mode,
                                     &spec.latent_id, &spec.bot_id, &spec.eot_id, &want_logits,
                                     &want_thoughts, &splits, &bf16))
        return NULL;
    if (enter(self, 0)) return NULL;
    Prepared pr;
    PyObject *logits = NULL, *thoughts = NULL, *where = NULL, *result = NULL;
    if (prepare(self, ids, mask, pos, Py_None, splits, &spec, 0, 0, bf16, &pr)) goto cleanup;
    if (want_logits) {
        npy_intp dims[3] = {pr.bt.B, pr.bt.T, self->shape.vocab_size};
        logits = PyArray_SimpleNew(3, dims, NPY_FLOAT32);
        if (!logits) goto cleanup;
    }
    Ctx c;
    make_ctx(self, &c, 0.0f, 0, bf16);
    float *lp = logits ? (float *)PyArray_DATA((PyArrayObject *)logits) : NULL;
    WITHOUT_GIL(product_weights(&c, &self->lay); run_forward(&c, &pr.bt, pr.plan.bounds, pr.plan.n_pass, lp));
    if (want_thoughts && collect_thoughts(self, &pr, &thoughts, &where)) goto cleanup;
    result = Py_BuildValue("(OOO)", logits ? logits : Py_None, thoughts ? thoughts : Py_None,
                           where ? where : Py_None);
cleanup:
    Py_XDECREF(logits);
    Py_XDECREF(thoughts);
    Py_XDECREF(where);
    release(&pr);
    self->busy = 0;
    return result;
}

static PyObject *Core_generate(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kws[] = {"input_ids", "attention_mask", "position_ids", "max_new_tokens", "eos_id",
                          "mode", "latent_id", "bot_id", "eot_id", "bf16", NULL};
    PyObject *ids, *mask, *pos;
    int max_new, bf16 = 0;
    long long eos;
    ThoughtSpec spec = {-1, -1, -1, MODE_NONE};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOiL|iLLLp", kws, &ids, &mask, &pos, &max_new, &eos,
                                     &spec.mode, &spec.latent_id, &spec.bot_id, &spec.eot_id, &bf16))
        return NULL;
    if (max_new < 1) {
        PyErr_Format(PyExc_ValueError, "max_new_tokens must be >= 1, got %d", max_new);
        return NULL;
    }
    if (eos < 0 || eos >= self->shape.vocab_size) {
        PyErr_Format(PyExc_ValueError, "eos_id = %lld is outside the vocabulary", eos);
        return NULL;
    }
    if (enter(self, 0)) return NULL;
    Prepared pr;
    PyObject *out = NULL, *counts = NULL, *result = NULL;
    DecodingBatch dec = {0};
    if (prepare(self, ids, mask, pos, Py_None, NULL, &spec, 0, max_new - 1, bf16, &pr)) goto cleanup;
    if (decoding_batch(&dec, &pr.bt, max_new, eos) != CORE_OK) {
        raise_status(CORE_OUT_OF_MEMORY, "the decoding columns", NULL);
        goto cleanup;
    }
    npy_intp d2[2] = {dec.bt.B, max_new}, d1[1] = {dec.bt.B};
    out = PyArray_SimpleNew(2, d2, NPY_INT64);
    counts = PyArray_SimpleNew(1, d1, NPY_INT64);
    if (!out || !counts) goto cleanup;
    Ctx c;
    make_ctx(self, &c, 0.0f, 0, bf16);
    CoreStatus st;
    WITHOUT_GIL(product_weights(&c, &self->lay); st = run_generate(&c, &dec.bt, pr.bt.T, pr.plan.bounds, pr.plan.n_pass, max_new, eos,
                                  PyArray_DATA((PyArrayObject *)out), PyArray_DATA((PyArrayObject *)counts)));
    if (st != CORE_OK) {
        char what[96];
        snprintf(what, sizeof what, "the next-token logits of a %d x %d decoding batch", dec.bt.B, dec.bt.T);
        raise_status(st, what, NULL);
        goto cleanup;
    }
    result = Py_BuildValue("(OO)", out, counts);
cleanup:
    Py_XDECREF(out);
    Py_XDECREF(counts);
    decoding_batch_free(&dec);
    release(&pr);
    self->busy = 0;
    return result;
}

static PyMethodDef Core_methods[] = {
    {"layout", (PyCFunction)Core_layout, METH_NOARGS, "Offsets of the parameter tensors."},
    {"bind", (PyCFunction)Core_bind, METH_VARARGS, "bind(params, grads=None)"},
    {"loss", (PyCFunction)(void (*)(void))Core_loss, METH_VARARGS | METH_KEYWORDS,
     "loss(input_ids, attention_mask, position_ids, labels, mode, latent_id, bot_id, eot_id, "
     "backward, dropout, seed, grad_scale, splits, bf16, packed) -> (mean loss, supervised count); "
     "packed=False runs every cell of the (B, T) grid"},
    {"forward", (PyCFunction)(void (*)(void))Core_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(input_ids, attention_mask, position_ids, mode, latent_id, bot_id, eot_id, logits, "
     "thoughts, splits, bf16) -> (logits, thoughts, thought positions)"},
    {"generate", (PyCFunction)(void (*)(void))Core_generate, METH_VARARGS | METH_KEYWORDS,
     "generate(input_ids, attention_mask, position_ids, max_new_tokens, eos_id, mode, latent_id, "
     "bot_id, eot_id, bf16) -> (new ids (B, max_new) padded with -1, counts (B,))"},
    {NULL}};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "coconut._C.Core",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_doc = "The GPT-2 C core: parameter layout, activations, passes.",
};

/* ------------------------------------------------------------------ module functions */

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

static PyMethodDef module_methods[] = {
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
    {NULL}};

/* The thought modes by the names Python uses (the one definition is thoughts.h). */
static int add_thought_modes(PyObject *mod) {
    PyObject *modes = Py_BuildValue("{s:i,s:i,s:i}", "none", MODE_NONE, "pause", MODE_PAUSE,
                                    "continuous", MODE_CONTINUOUS);
    if (!modes) return -1;
    if (PyModule_AddObject(mod, "THOUGHT_MODES", modes) < 0) {
        Py_DECREF(modes);
        return -1;
    }
    return 0;
}

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "The coconut C core.", -1,
                                        module_methods};

PyMODINIT_FUNC PyInit__C(void) {
    import_array();
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module_def);
    if (!mod) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(mod, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(mod);
        return NULL;
    }
    if (add_thought_modes(mod)) {
        Py_DECREF(mod);
        return NULL;
    }
    g_threads = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
    blas_set_threads_mode(0, g_threads);
    return mod;
}
