/* CPython/NumPy bindings of the C core: the Core type (a model's parameters, activations,
 * loss, forward and decoding) and the module itself; its functions are in py_functions.c.
 * Nothing here computes; it validates, then calls the core, and turns the status it
 * returns into a Python exception. */
#define COCONUT_IMPORT_ARRAY
#include "py_common.h"

#include <string.h>

#include "alloc.h"
#include "blas.h"
#include "generate.h"
#include "gpt2.h"
#include "prosqa_draw.h"
#include "row_plan.h"
#include "thoughts.h"

typedef struct {
    PyObject_HEAD
    GPT2Shape shape;
    ParamLayout lay;
    PyArrayObject *params;   /* float32 (total,) */
    PyArrayObject *grads;    /* float32 (total,) or NULL */
    Acts acts;
    int busy;
} CoreObject;

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
    static char *kws[] = {"n_layer", "n_head", "n_embd", "vocab_size", "n_positions", "thought_projection",
                          NULL};
    GPT2Shape s = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiiii|i", kws, &s.n_layer, &s.n_head, &s.n_embd,
                                     &s.vocab_size, &s.n_positions, &s.prj_hidden))
        return -1;
    if (s.prj_hidden < 0) {
        PyErr_Format(PyExc_ValueError, "thought_projection must be >= 0 (0: none), got %d", s.prj_hidden);
        return -1;
    }
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
        "{s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n,s:n}",
        "wte", (Py_ssize_t)l->wte, "wpe", (Py_ssize_t)l->wpe, "ln1_w", (Py_ssize_t)l->ln1_w,
        "ln1_b", (Py_ssize_t)l->ln1_b, "qkv_w", (Py_ssize_t)l->qkv_w, "qkv_b", (Py_ssize_t)l->qkv_b,
        "attproj_w", (Py_ssize_t)l->attproj_w, "attproj_b", (Py_ssize_t)l->attproj_b,
        "ln2_w", (Py_ssize_t)l->ln2_w, "ln2_b", (Py_ssize_t)l->ln2_b, "fc_w", (Py_ssize_t)l->fc_w,
        "fc_b", (Py_ssize_t)l->fc_b, "fcproj_w", (Py_ssize_t)l->fcproj_w,
        "fcproj_b", (Py_ssize_t)l->fcproj_b, "lnf_w", (Py_ssize_t)l->lnf_w,
        "lnf_b", (Py_ssize_t)l->lnf_b, "prj_fc1_w", (Py_ssize_t)l->prj_fc1_w,
        "prj_fc1_b", (Py_ssize_t)l->prj_fc1_b, "prj_fc2_w", (Py_ssize_t)l->prj_fc2_w,
        "prj_fc2_b", (Py_ssize_t)l->prj_fc2_b, "prj_ln_w", (Py_ssize_t)l->prj_ln_w,
        "prj_ln_b", (Py_ssize_t)l->prj_ln_b, "total", (Py_ssize_t)l->total);
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
    PyObject *cells;    /* int32 (n_hid) the hidden cells in the batch's columns, or NULL */
    PyObject *hidden;   /* float32 (n_hid, L+1, C) their states, or NULL */
} Prepared;

/* hidden_cells (None: none): (example, position) pairs of the caller's batch, as the
 * batch's cells (Batch.n_hid) and the array that receives their states. */
static int parse_hidden_cells(CoreObject *self, PyObject *obj, Prepared *pr) {
    if (!obj || obj == Py_None) return 0;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT64, NPY_ARRAY_IN_ARRAY);
    if (!a) return -1;
    int rc = -1, B = pr->bt.B, T = pr->plan.real_T;
    if (PyArray_NDIM(a) != 2 || PyArray_DIM(a, 1) != 2) {
        PyErr_SetString(PyExc_ValueError, "hidden_cells must be an integer array of shape (n, 2): "
                        "(example, position) pairs");
        goto done;
    }
    npy_intp n = PyArray_DIM(a, 0), d3[3] = {n, self->shape.n_layer + 1, self->shape.n_embd};
    const int64_t *v = PyArray_DATA(a);
    for (npy_intp k = 0; k < n; k++)
        if (v[2 * k] < 0 || v[2 * k] >= B || v[2 * k + 1] < 0 || v[2 * k + 1] >= T) {
            PyErr_Format(PyExc_ValueError, "hidden_cells[%zd] = (%lld, %lld) is outside the (%d, %d) batch", (Py_ssize_t)k,
                         (long long)v[2 * k], (long long)v[2 * k + 1], B, T);
            goto done;
        }
    pr->cells = PyArray_SimpleNew(1, &n, NPY_INT32);
    pr->hidden = PyArray_SimpleNew(3, d3, NPY_FLOAT32);
    if (!pr->cells || !pr->hidden) goto done;
    int32_t *cell = PyArray_DATA((PyArrayObject *)pr->cells);
    for (npy_intp k = 0; k < n; k++)   /* a Jacobi batch is unrolled: the column of t's final output */
        cell[k] = (int32_t)(v[2 * k] * pr->bt.T + plan_column(&pr->plan, (int)v[2 * k + 1]));
    pr->bt.n_hid = (int)n;
    pr->bt.hid_cell = cell;
    pr->bt.hid_out = PyArray_DATA((PyArrayObject *)pr->hidden);
    rc = 0;
done:
    Py_DECREF(a);
    return rc;
}

/* hidden_grad: a float array of the hidden states' shape, as a float32 array (new reference). */
static PyArrayObject *check_hidden_grad(const Prepared *pr, PyObject *obj) {
    PyArrayObject *g = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_FLOAT32, NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!g) return NULL;
    PyArrayObject *h = (PyArrayObject *)pr->hidden;
    if (PyArray_NDIM(g) != 3 || PyArray_DIM(g, 0) != PyArray_DIM(h, 0) || PyArray_DIM(g, 1) != PyArray_DIM(h, 1) ||
        PyArray_DIM(g, 2) != PyArray_DIM(h, 2)) {
        PyObject *shape = PyObject_GetAttrString((PyObject *)g, "shape");
        PyErr_Format(PyExc_ValueError, "hidden_grad has shape %R, the hidden cells' states have (%zd, %zd, %zd) "
                     "(cells, n_layer + 1, n_embd)", shape, (Py_ssize_t)PyArray_DIM(h, 0),
                     (Py_ssize_t)PyArray_DIM(h, 1), (Py_ssize_t)PyArray_DIM(h, 2));
        Py_XDECREF(shape);
        Py_DECREF(g);
        return NULL;
    }
    return g;
}

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
                   PyObject *hidden_cells, Prepared *pr) {
    memset(pr, 0, sizeof(*pr));
    char err[256];
    int H = self->shape.prj_hidden, with_cells = hidden_cells && hidden_cells != Py_None;
    if (H && (spec->mode == MODE_SOFT || spec->mode == MODE_JACOBI)) {
        PyErr_SetString(PyExc_ValueError, "thought_projection: the model's thought projection applies to continuous "
                        "thoughts only (soft and jacobi thoughts refuse a model that has one)");
        return -1;
    }
    spec->projected = H && spec->mode == MODE_CONTINUOUS;
    if (bf16 && (spec->projected || with_cells)) {
        PyErr_SetString(PyExc_ValueError, spec->projected
                        ? "bf16: the thought projection runs in fp32 only (set the model's bf16 to False)"
                        : "bf16: hidden_cells run in fp32 only (set the model's bf16 to False)");
        return -1;
    }
    CoreStatus st = check_thought_spec(spec, self->shape.vocab_size, err, sizeof err);
    if (st != CORE_OK) {
        raise_status(st, "the thought spec", err);
        return -1;
    }
    if (bf16 && spec->mode == MODE_SOFT) {
        PyErr_SetString(PyExc_ValueError, "bf16: soft thoughts run in fp32 only (set the model's bf16 to False)");
        return -1;
    }
    if (parse_batch(self, ids, mask, pos, labels, &pr->bt)) return -1;
    st = plan_thoughts(&pr->plan, &pr->bt, spec, err, sizeof err);
    if (st == CORE_OK)
        st = plan_soft_tensors(&pr->plan, &pr->bt, self->shape.vocab_size, self->shape.n_embd, H, need_backward);
    if (st != CORE_OK) {
        raise_status(st, "the thought slots and passes", err);
        return -1;
    }
    if (parse_hidden_cells(self, hidden_cells, pr)) return -1;
    int B = pr->bt.B, T = pr->bt.T;  /* a Jacobi batch is unrolled: splits are its columns */
    int *extra, n_extra;
    if (parse_splits(splits, T, &extra, &n_extra)) return -1;
    plan_passes(&pr->plan, &pr->bt, extra, n_extra);
    core_free(extra);
    /* hidden states are read after the passes: every layer keeps its own tensors */
    st = acts_reserve(&self->acts, &self->shape, B, T + extra_columns, need_backward || with_cells, g_threads, bf16);
    if (st != CORE_OK) {
        char what[96];
        snprintf(what, sizeof what, "the activations of a %d x %d batch", B, T + extra_columns);
        raise_status(st, what, NULL);
        return -1;
    }
    return 0;
}

static void release(Prepared *pr) {
    plan_free(&pr->plan);
    Py_CLEAR(pr->cells);
    Py_CLEAR(pr->hidden);
}

static int plan_rows_or_raise(Prepared *pr, int n_layer) {
    CoreStatus st = plan_rows(&pr->plan, &pr->bt, n_layer);
    if (st != CORE_OK) raise_status(st, "the packed row maps", NULL);
    return st == CORE_OK ? 0 : -1;
}

static PyObject *Core_loss(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kws[] = {"input_ids", "attention_mask", "position_ids", "labels", "mode",
                          "latent_id", "bot_id", "eot_id", "backward", "dropout", "seed",
                          "grad_scale", "splits", "bf16", "packed", "temperature", "iterations",
                          "hidden_cells", "hidden_grad", NULL};
    PyObject *ids, *mask, *pos, *labels, *splits = NULL, *cells = Py_None, *hgrad = Py_None;
    ThoughtSpec spec = DEFAULT_SPEC;
    int backward = 1, bf16 = 0, packed = 1;
    float p_drop = 0.0f, grad_scale = 1.0f;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|iLLLpfKfOppfiOO", kws, &ids, &mask, &pos, &labels,
                                     &spec.mode, &spec.latent_id, &spec.bot_id, &spec.eot_id,
                                     &backward, &p_drop, &seed, &grad_scale, &splits, &bf16, &packed,
                                     &spec.temperature, &spec.iterations, &cells, &hgrad))
        return NULL;
    if (labels == Py_None) {
        PyErr_SetString(PyExc_ValueError, "labels are required for the loss");
        return NULL;
    }
    if (!(p_drop >= 0.0f && p_drop < 1.0f)) {
        PyErr_Format(PyExc_ValueError, "dropout must be in [0, 1), got %g", (double)p_drop);
        return NULL;
    }
    if (hgrad != Py_None && (cells == Py_None || !backward)) {
        PyErr_SetString(PyExc_ValueError, cells == Py_None ? "hidden_grad needs hidden_cells (the cells it is for)"
                        : "hidden_grad needs backward=True");
        return NULL;
    }
    if (enter(self, backward)) return NULL;
    Prepared pr;
    PyObject *result = NULL;
    PyArrayObject *hg = NULL;
    LossState ls = {0};
    if (prepare(self, ids, mask, pos, labels, splits, &spec, backward, 0, bf16, cells, &pr) == 0 &&
        (!packed || plan_rows_or_raise(&pr, self->shape.n_layer) == 0)) {
        /* an array is checked before any compute; a callable's answer after the forward */
        int call = hgrad != Py_None && PyCallable_Check(hgrad);
        if (hgrad != Py_None && !call && !(hg = check_hidden_grad(&pr, hgrad))) goto cleanup;
        Ctx c;
        make_ctx(self, &c, p_drop, seed, bf16);
        double loss = 0.0;
        long n_sup = 0;
        CoreStatus st;
        WITHOUT_GIL(product_weights(&c, &self->lay);
                    st = loss_forward(&c, &pr.bt, &pr.plan, backward, grad_scale, &loss, &n_sup, &ls));
        if (st != CORE_OK) {
            char what[96];
            snprintf(what, sizeof what, "the loss of a %d x %d batch", pr.bt.B, pr.bt.T);
            raise_status(st, what, NULL);
            goto cleanup;
        }
        if (call) {
            PyObject *answer = PyObject_CallFunctionObjArgs(hgrad, pr.hidden, NULL);
            if (!answer) goto cleanup;
            hg = check_hidden_grad(&pr, answer);
            Py_DECREF(answer);
            if (!hg) goto cleanup;
        }
        if (hg) pr.bt.hid_grad = PyArray_DATA(hg);
        if (backward) WITHOUT_GIL(loss_backward(&c, &pr.bt, &pr.plan, &ls));
        result = pr.hidden ? Py_BuildValue("(dlO)", loss, n_sup, pr.hidden) : Py_BuildValue("(dl)", loss, n_sup);
    }
cleanup:
    Py_XDECREF(hg);
    loss_state_free(&ls);
    release(&pr);
    self->busy = 0;
    return result;
}

/* The vector fed into each thought slot (continuous and Jacobi: the ln_f output it
 * read, for Jacobi in the last copy; soft: its mixture) and where it went, in the
 * caller's columns, as two new arrays; 0, or -1 with a Python error set. */
static int collect_thoughts(CoreObject *self, const Prepared *pr, PyObject **thoughts, PyObject **where) {
    const Batch *bt = &pr->bt;
    int B = bt->B, T = bt->T, C = self->shape.n_embd, Tr = pr->plan.real_T;
    npy_intp n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tr; t++) n += pr->plan.is_thought[(size_t)b * T + plan_column(&pr->plan, t)];
    npy_intp d1[2] = {n, C}, d2[2] = {n, 2};
    *thoughts = PyArray_SimpleNew(2, d1, NPY_FLOAT32);
    *where = PyArray_SimpleNew(2, d2, NPY_INT64);
    if (!*thoughts || !*where) return -1;
    float *tv = PyArray_DATA((PyArrayObject *)*thoughts);
    int64_t *wv = PyArray_DATA((PyArrayObject *)*where);
    npy_intp k = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tr; t++) {
            size_t i = (size_t)b * T + plan_column(&pr->plan, t);
            if (!pr->plan.is_thought[i]) continue;
            const float *src = bt->thought_in ? bt->thought_in + (size_t)bt->thought_index[i] * C
                : self->acts.lnf + (size_t)rows_of_cell(&bt->out_rows, thought_source(bt, i)) * C;
            memcpy(tv + k * C, src, sizeof(float) * C);
            wv[2 * k] = b;
            wv[2 * k + 1] = t;
            k++;
        }
    return 0;
}

static PyObject *Core_forward(CoreObject *self, PyObject *args, PyObject *kw) {
    static char *kws[] = {"input_ids", "attention_mask", "position_ids", "mode", "latent_id",
                          "bot_id", "eot_id", "logits", "thoughts", "splits", "bf16", "temperature",
                          "iterations", "hidden_cells", NULL};
    PyObject *ids, *mask, *pos, *splits = NULL, *cells = Py_None;
    ThoughtSpec spec = DEFAULT_SPEC;
    int want_logits = 1, want_thoughts = 0, bf16 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|iLLLppOpfiO", kws, &ids, &mask, &pos, &spec.mode,
                                     &spec.latent_id, &spec.bot_id, &spec.eot_id, &want_logits,
                                     &want_thoughts, &splits, &bf16, &spec.temperature, &spec.iterations, &cells))
        return NULL;
    if (enter(self, 0)) return NULL;
    Prepared pr;
    PyObject *logits = NULL, *thoughts = NULL, *where = NULL, *result = NULL;
    if (prepare(self, ids, mask, pos, Py_None, splits, &spec, 0, 0, bf16, cells, &pr)) goto cleanup;
    if (want_logits) {
        npy_intp dims[3] = {pr.bt.B, pr.plan.real_T, self->shape.vocab_size};
        logits = PyArray_SimpleNew(3, dims, NPY_FLOAT32);
        if (!logits) goto cleanup;
    }
    Ctx c;
    make_ctx(self, &c, 0.0f, 0, bf16);
    float *lp = logits ? (float *)PyArray_DATA((PyArrayObject *)logits) : NULL;
    WITHOUT_GIL(product_weights(&c, &self->lay); run_forward(&c, &pr.bt, &pr.plan, lp));
    if (want_thoughts && collect_thoughts(self, &pr, &thoughts, &where)) goto cleanup;
    result = Py_BuildValue("(OOOO)", logits ? logits : Py_None, thoughts ? thoughts : Py_None,
                           where ? where : Py_None, pr.hidden ? pr.hidden : Py_None);
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
                          "mode", "latent_id", "bot_id", "eot_id", "bf16", "temperature", "iterations", NULL};
    PyObject *ids, *mask, *pos;
    int max_new, bf16 = 0;
    long long eos;
    ThoughtSpec spec = DEFAULT_SPEC;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOiL|iLLLpfi", kws, &ids, &mask, &pos, &max_new, &eos,
                                     &spec.mode, &spec.latent_id, &spec.bot_id, &spec.eot_id, &bf16,
                                     &spec.temperature, &spec.iterations))
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
    if (prepare(self, ids, mask, pos, Py_None, NULL, &spec, 0, max_new - 1, bf16, NULL, &pr)) goto cleanup;
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
    WITHOUT_GIL(product_weights(&c, &self->lay); st = run_generate(&c, &dec.bt, pr.bt.T, &pr.plan, max_new, eos,
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
     "backward, dropout, seed, grad_scale, splits, bf16, packed, temperature, iterations, hidden_cells, "
     "hidden_grad) -> (mean loss, supervised count[, hidden states (n, L+1, C) of hidden_cells]); "
     "packed=False runs every cell of the (B, T) grid; hidden_grad: an array of the hidden states' shape, or a "
     "callable given the hidden states that returns one, added to their gradient"},
    {"forward", (PyCFunction)(void (*)(void))Core_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(input_ids, attention_mask, position_ids, mode, latent_id, bot_id, eot_id, logits, "
     "thoughts, splits, bf16, temperature, iterations, hidden_cells) -> (logits, thoughts, thought positions, "
     "hidden states of hidden_cells or None)"},
    {"generate", (PyCFunction)(void (*)(void))Core_generate, METH_VARARGS | METH_KEYWORDS,
     "generate(input_ids, attention_mask, position_ids, max_new_tokens, eos_id, mode, latent_id, "
     "bot_id, eot_id, bf16, temperature, iterations) -> (new ids (B, max_new) padded with -1, counts (B,))"},
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

/* The thought modes by the names Python uses (the one definition is row_plan.h). */
static int add_thought_modes(PyObject *mod) {
    PyObject *modes = Py_BuildValue("{s:i,s:i,s:i,s:i,s:i}", "none", MODE_NONE, "pause", MODE_PAUSE,
                                    "continuous", MODE_CONTINUOUS, "soft", MODE_SOFT, "jacobi", MODE_JACOBI);
    if (!modes) return -1;
    if (PyModule_AddObject(mod, "THOUGHT_MODES", modes) < 0) {
        Py_DECREF(modes);
        return -1;
    }
    return 0;
}

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "The coconut C core.", -1,
                                        py_functions};

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
    if (add_thought_modes(mod) || PyModule_AddIntConstant(mod, "PROSQA_MAX_GROWN_NODES", PROSQA_MAX_GROWN_NODES)) {
        Py_DECREF(mod);
        return NULL;
    }
    g_threads = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
    blas_set_threads_mode(0, g_threads);
    return mod;
}
