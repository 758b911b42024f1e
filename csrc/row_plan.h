/* The plan of one batch, made before any compute: which cells are thought slots, the
 * passes they cut the positions into, and, for the loss, which cells own an activation
 * row (rows.h) and which of those have their output read. */
#ifndef COCONUT_ROW_PLAN_H
#define COCONUT_ROW_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"

/* What a <latent> slot's input is. CONTINUOUS: the ln_f output of the position before
 * it. SOFT: softmax(that output @ wte^T / temperature) @ wte, the probability-weighted
 * mixture of token embeddings. JACOBI: the slots of an example are filled in parallel,
 * by `iterations` Jacobi iterations over the whole slot block (see plan_thoughts). */
enum { MODE_NONE = 0, MODE_PAUSE = 1, MODE_CONTINUOUS = 2, MODE_SOFT = 3, MODE_JACOBI = 4 };

typedef struct {
    int64_t latent_id, bot_id, eot_id;
    int mode;
    float temperature;  /* soft: tau > 0 */
    int iterations;     /* jacobi: T >= 1 */
    int projected;      /* continuous: the fed-back state goes through the model's thought
                         * projection (set by the binding from the model, not the caller) */
} ThoughtSpec;

/* What a binding starts from before it parses the caller's keywords. */
#define DEFAULT_SPEC ((ThoughtSpec){-1, -1, -1, MODE_NONE, 1.0f, 3, 0})

/* CORE_BAD_INPUT with a message naming the field (mode, temperature, iterations or a
 * thought id) that the spec gets wrong. */
CoreStatus check_thought_spec(const ThoughtSpec *spec, int vocab_size, char *err, size_t errlen);

/* Jacobi thoughts run on an unrolled batch: the block of columns [first, first + width)
 * that holds every slot of the batch is laid out `copies` = iterations + 1 times in a
 * row, copy k holding iteration k's inputs (copy 0: the <latent> embeddings; copy k >= 1:
 * in each slot the ln_f output of copy k-1 at the position before it, or of <bot> before
 * the block). The columns after the block follow the last copy. A copy's pass reads the
 * cache of the columns before the block and of its own copy only: the pass driver masks
 * the earlier copies (plan_set_live), so the columns after the block see the last copy.
 *
 * This is PCCoT's schedule (whyNLP/PCCoT, models/modeling_gpt2.py, PCCoTGPT2LMHeadModel
 * .forward, and models/data_processor.py): a first forward over question, <bot> and the
 * <latent> tokens (their own embeddings: copy 0) gives each slot the output of the
 * position before it; each of num_iterations passes over the slot block against the
 * question's cache then runs those inputs and shifts its outputs into the next inputs;
 * the answer runs against the cache of the last of these passes, so the update computed
 * from it is never used. Here iterations = num_iterations: T updates, and the last copy
 * is the pass with the T-th update's inputs whose keys and values the answer reads.
 * (PCCoT gives every example the same number of slots and passes no attention mask to
 * the block's passes; here an example's slots are its own <latent> run inside the
 * block, padding stays masked, and the columns of the block that are not an example's
 * slots are its ordinary tokens, computed again in every copy.) */
typedef struct {
    int first, width, copies;  /* width 0: no block (a batch without slots) */
    int T;                     /* the unrolled width: the caller's T + (copies - 1) * width */
} JacobiLayout;

/* Soft thoughts' tensors, thoughts numbered time-major (the thoughts of a pass are a
 * contiguous range). Projected continuous thoughts (ThoughtSpec.projected) are numbered
 * and fed the same way, mix then holding the projection's output. */
typedef struct {
    int n;
    int projected;             /* 1: projected continuous thoughts, 0: soft thoughts */
    int H;                     /* projected: the projection's hidden width */
    float tau;
    int32_t *index;            /* (B,T) a thought's number, -1 elsewhere */
    int32_t *cell;             /* (n,2) example and position of each thought */
    float *h;                  /* (n,C) the ln_f output each thought reads */
    float *probs;              /* (n,V) softmax(h @ wte^T / tau) */
    float *mix;                /* (n,C) probs @ wte: the thought's input */
    float *dmix, *dz;          /* backward: (n,C) the gradient of mix, then of h; (n,V) of the logits */
    /* projected: pre (n,H) = h W1^T + b1, act = gelu(pre), y (n,C) = act W2^T + b2, stats
     * (2n) the LayerNorm's mean and rstd (mix = LN(y)); backward: dact (n,H), dy (n,C) */
    float *pre, *act, *y, *stats, *dact, *dy;
} SoftThoughts;

/* The arrays a plan owns; the batch it planned points into them. */
typedef struct {
    uint8_t *is_thought;  /* (B,T) 1 where the input is a fed-back vector */
    int *bounds;          /* (T+1) room; n_pass + 1 pass boundaries */
    int n_pass;
    int32_t *packed;      /* the packed row maps' arrays; NULL while bt has the full maps */
    int real_T;           /* the caller's T (the batch's, but for an unrolled Jacobi batch) */
    JacobiLayout jac;
    int64_t *cols;        /* jacobi: the unrolled ids, mask, pos, labels and the mask as given */
    int32_t *src_col;     /* jacobi: (B,T) the column each thought reads */
    SoftThoughts soft;
} RowPlan;

/* Marks the thought slots of bt (bt->is_thought points at the plan's map) and checks
 * every <latent> run sits right after <bot> and right before <eot>. CORE_BAD_INPUT comes
 * with a message naming the example and position; CORE_OUT_OF_MEMORY. The caller calls
 * plan_free in any case. Jacobi: bt becomes the unrolled batch (JacobiLayout; its T
 * grows, its arrays are the plan's), its labels placed so that every supervised label
 * is read once, from the cell that holds its position's final output; soft: the
 * thoughts are numbered (SoftThoughts.index). */
CoreStatus plan_thoughts(RowPlan *p, Batch *bt, const ThoughtSpec *spec, char *err, size_t errlen);

/* Soft or projected thoughts: their tensors for a vocabulary of V, width C and (projected)
 * the projection's hidden width H (backward: the gradients' too), and bt's pointers at
 * them. CORE_OUT_OF_MEMORY. */
CoreStatus plan_soft_tensors(RowPlan *p, Batch *bt, int V, int C, int H, int backward);

/* The column of the (unrolled) batch that holds the final output of the caller's
 * column t: t itself but for Jacobi. */
int plan_column(const RowPlan *p, int t);

/* Before the pass that starts at t0 (forward or backward) of a Jacobi batch: the mask
 * (B rows, ld apart) of the copies before t0's copy is zero, the rest as given (the
 * columns after the block count as the last copy). No-op for the other modes. */
void plan_set_live(const RowPlan *p, int64_t *mask, int B, int ld, int t0);

/* Pass boundaries: 0, every thought position (Jacobi: every copy's first column), the
 * `extra` ones (tests split ranges at will), T. A thought then always reads the ln_f
 * output of an earlier pass. */
void plan_passes(RowPlan *p, const Batch *bt, const int *extra, int n_extra);

/* Gives the loss's batch its packed row maps (bt->rows, bt->out_rows); needs labels.
 * The hidden cells (bt->hid_cell) count as read outputs. CORE_OUT_OF_MEMORY. */
CoreStatus plan_rows(RowPlan *p, Batch *bt, int n_layer);

/* Attention's work per pass i and example b ((n_pass, B) each): its keys (the unmasked
 * cells of [0, bounds[i+1]) with a row, but a Jacobi pass's dead copies), its queries in the layers before the last (the
 * keys at or after bounds[i]) and in the last layer (those of them in out_rows). */
void plan_attention_counts(const RowPlan *p, const Batch *bt, int64_t *keys, int64_t *queries,
                           int64_t *out_queries);

void plan_free(RowPlan *p);

#endif
