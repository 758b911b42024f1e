/* The GPT-2 model of the C core: shape, parameter layout, activation arena, and the
 * entry points the Python module calls. Tensors are named pointers into three blocks:
 * parameters and gradients (owned by Python as NumPy arrays) and one activation arena.
 *
 * Activations are stored time-major, one row per cell (example, position) that owns one
 * (rows.h): the rows of a position range [t0, t1) of the whole batch are then one
 * contiguous block, so every pass of the thought schedule, however short, is a single
 * matrix product per weight. The arena has room for every cell of a (B, T) batch. */
#ifndef COCONUT_GPT2_H
#define COCONUT_GPT2_H

#include <stddef.h>
#include <stdint.h>

#include "rows.h"
#include "status.h"

typedef struct {
    int n_layer, n_head, n_embd, vocab_size, n_positions;
    int prj_hidden;  /* the thought projection's hidden width H; 0: the model has none */
} GPT2Shape;

/* Offsets (in floats) of every parameter tensor inside the one block. Per-layer
 * tensors of one kind are stacked: qkv_w is (L, C, 3C), layer l at qkv_w + l*C*3C.
 * Weights keep the Hugging Face Conv1D layout (in, out): y = x @ W + b. */
typedef struct {
    size_t wte;      /* (V, C) token embedding, tied to the LM head */
    size_t wpe;      /* (P, C) */
    size_t ln1_w, ln1_b;         /* (L, C) */
    size_t qkv_w, qkv_b;         /* (L, C, 3C), (L, 3C) */
    size_t attproj_w, attproj_b; /* (L, C, C), (L, C) */
    size_t ln2_w, ln2_b;         /* (L, C) */
    size_t fc_w, fc_b;           /* (L, C, 4C), (L, 4C) */
    size_t fcproj_w, fcproj_b;   /* (L, 4C, C), (L, C) */
    size_t lnf_w, lnf_b;         /* (C) */
    /* The thought projection (a model made with prj_hidden = H > 0; else empty, at the
     * block's end): CODI's Linear(C, H), GELU (erf), Linear(H, C), LayerNorm(C), applied
     * to a continuous thought's fed-back hidden state. Weights in torch.nn.Linear's
     * layout (out, in): y = x @ W^T + b. */
    size_t prj_fc1_w, prj_fc1_b;  /* (H, C), (H) */
    size_t prj_fc2_w, prj_fc2_b;  /* (C, H), (C) */
    size_t prj_ln_w, prj_ln_b;    /* (C) */
    size_t total;
} ParamLayout;

void param_layout(const GPT2Shape *s, ParamLayout *out);

/* Named pointers into one block (parameters or gradients). */
typedef struct {
    float *wte, *wpe, *ln1_w, *ln1_b, *qkv_w, *qkv_b, *attproj_w, *attproj_b;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *fcproj_w, *fcproj_b, *lnf_w, *lnf_b;
    float *prj_fc1_w, *prj_fc1_b, *prj_fc2_w, *prj_fc2_b, *prj_ln_w, *prj_ln_b;
} ParamPtrs;

void param_pointers(const ParamLayout *lay, float *block, ParamPtrs *out);

/* Dropout probabilities and the counter that makes the masks reproducible: the mask
 * of an element depends only on (seed, site, element index), never on the order in
 * which passes compute it. */
typedef struct {
    float p;          /* 0 disables dropout */
    uint64_t seed;
} Dropout;

/* Per-layer activations kept for backward, one row per cell that owns one ("rows"). */
typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;   /* (rows,C), (rows), (rows) */
    float *qkv;                          /* (rows,3C): the key/value cache lives here */
    float *atty;                         /* (rows,C) attention output before c_proj */
    float *lse;                          /* (B,NH,T) log-sum-exp of each query row */
    float *res1;                         /* (rows,C) residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch;                          /* (rows,4C) before GELU */
    float *gelu;                         /* (rows,4C) GELU(fch): kept for c_proj's weight gradient */
    float *res2;                         /* (rows,C) layer output */
    float *dqkv;                         /* (rows,3C) gradient of q,k,v, accumulated across passes */
    /* gradients at the outputs of the other linear layers, kept for all rows so that
     * the weight gradients are one product over the whole batch after the last pass */
    float *d_attproj, *d_fc, *d_fcproj;  /* (rows,C), (rows,4C), (rows,C) */
} LayerActs;

typedef struct {
    int B, T;
    float *emb;                          /* (rows,C) input of layer 0 */
    LayerActs *layers;                   /* n_layer entries */
    float *lnf, *lnf_mean, *lnf_rstd;    /* (out rows,C), (out rows), (out rows) */
    float *dlnf;                         /* (out rows,C) gradient of the ln_f output */
    /* scratch for one range of rows (at most T*B rows) */
    float *s_dres, *s_dx, *s_dbig;
    float *s_dres_out;                   /* the residual gradient in the last layer's out rows */
    float *s_attn;                       /* attention scratch: a slot per attention thread */
    float *w_bf16;                       /* (total params) under bf16: the weights rounded */
    float *s_dw_bf16;                    /* bf16 backward: max(V*C, 4C*C), a weight gradient's product */
    int attn_threads;
    float *arena;
    size_t arena_floats;
} Acts;

/* One batch as the core sees it (all (B, T), row-major as given by Python). */
typedef struct {
    int B, T;
    const int64_t *ids;
    const int64_t *mask;       /* 1 = attend, 0 = padding */
    const int64_t *pos;        /* position ids */
    const int64_t *labels;     /* -100 = ignored; NULL for inference */
    const uint8_t *is_thought; /* (B,T) 1 where the input is a fed-back hidden state */
    RowMap rows;               /* which cells own an activation row, and where */
    RowMap out_rows;           /* those of them whose output is read (logits, thoughts): the
                                * last layer's rows after its keys and values, and ln_f's */
    /* Where a thought's input comes from (row_plan.h). Continuous: the ln_f output of
     * the cell before it. Jacobi: of the column src_col names (same example). Soft: the
     * row thought_index names in thought_in (C floats a row), whose gradient the
     * backward adds into d_thought_in. */
    const int32_t *src_col;       /* (B,T) or NULL: t-1 */
    const int32_t *thought_index; /* (B,T) or NULL */
    const float *thought_in;
    float *d_thought_in;
    /* Hidden states asked for (the loss's and the forward's hidden_cells): n_hid cells
     * (b*T + t in this batch's columns, each in out_rows), whose residual stream at every
     * depth the forward writes into hid_out (n_hid, L+1, C) as transformers'
     * output_hidden_states has it: entry j < L the input of block j (entry 0 the
     * embeddings' sum after dropout), entry L the ln_f output. The backward adds hid_grad
     * (the same shape, NULL: none) to the gradient of those states. */
    int n_hid;
    const int32_t *hid_cell;
    float *hid_out;
    const float *hid_grad;
} Batch;

/* The cell (b*T + t) whose ln_f output the thought at cell i reads. */
static inline size_t thought_source(const Batch *bt, size_t i) {
    return bt->src_col ? i - i % bt->T + (size_t)bt->src_col[i] : i - 1;
}

typedef struct {
    const GPT2Shape *shape;
    ParamPtrs p;      /* parameters */
    ParamPtrs pm;     /* the weights matrix products read: p, or under bf16 their rounded copy */
    ParamPtrs g;      /* gradients (may be unset for inference) */
    Acts *a;
    Dropout drop;
    int bf16;         /* mixed precision: see bf16.h and passes.c */
} Ctx;

/* Lays the arena out for a (B, T) batch run on n_threads threads, growing it if needed;
 * bf16 adds room for a rounded copy of the weights. Everything the passes use lives
 * there, so forward and backward allocate nothing and cannot fail. On
 * CORE_OUT_OF_MEMORY the arena is empty and a later call starts over. */
CoreStatus acts_reserve(Acts *a, const GPT2Shape *s, int B, int T, int need_backward, int n_threads,
                        int bf16);
void acts_free(Acts *a);

/* Sets c->pm: the parameters c->p themselves, or under c->bf16 the arena's copy of
 * their block (laid out by lay) refreshed with every value rounded to bf16. Every entry
 * point calls it, since the weights change between calls; the fp32 parameters stay the
 * master copy that gradients and the optimizer see. */
void product_weights(Ctx *c, const ParamLayout *lay);

/* passes.c: forward of the rows of positions [t0, t1) against the cache of [0, t0),
 * and its backward, which also accumulates into the key/value gradients of [0, t0). */
void forward_range(Ctx *c, const Batch *b, int t0, int t1);
void backward_range(Ctx *c, const Batch *b, int t0, int t1);
/* After every backward_range: the weight and bias gradients of the linear layers. */
void backward_weights(Ctx *c, const Batch *b);

/* The row of hidden-state entry j (see Batch.n_hid) of cell i: in rows for j < L (the
 * emb or the res2 of block j-1), in out_rows for j == L (ln_f). */
float *hidden_state_row(const Ctx *c, const Batch *b, int j, size_t i);
/* Adds hid_grad's entry j of the hidden cells in positions [t0, t1) into d (the rows
 * [r0, ...) of bt->rows, or for j == L the ln_f gradient, rows of out_rows from 0). */
void add_hidden_grad(const Ctx *c, const Batch *b, int j, int t0, int t1, float *d, size_t r0);

#endif
