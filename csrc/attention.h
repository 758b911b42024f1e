/* Causal self-attention of one pass against the key/value cache, forward and backward,
 * on the rows of row maps (rows.h). */
#ifndef COCONUT_ATTENTION_H
#define COCONUT_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "rows.h"

/* Floats of attention scratch per thread (head size hd): the (queries, keys)
 * probabilities and (bf16) their row sums, copies of one head's rows, the index arrays
 * of its cells, and for backward the probabilities, their dropped copy and their
 * gradient. The caller owns the scratch (the activation arena), so the attention kernels
 * allocate nothing and cannot fail. */
size_t attention_scratch_floats(int T, int hd, int backward);

/* Causal self-attention of the positions [t0, t1) against the keys [0, t]. qkv (rows of
 * the key map km, 3C) holds every earlier position already (the cache); the queries are
 * the cells of [t0, t1) with a row in the query map qm (km itself, or fewer cells where
 * only some outputs are read), out (rows of qm, C); lse (B,NH,T). Masked keys are
 * skipped; a masked query gets zero. Runs on n_threads threads, each on its slot of
 * attention_scratch_floats(T, C/NH, 0). bf16: qkv holds bf16 values; as PyTorch's CPU
 * flash attention does (for rows within one key block), exp(score - row max) is rounded
 * to bf16 for the product with V and the fp32 row sum divides the result (scores,
 * softmax and log-sum-exp stay fp32), and out is rounded. */
void attention_forward(float *out, float *lse, float *scratch, const float *qkv, const RowMap *km,
                       const RowMap *qm, const int64_t *mask, int t0, int t1, int C, int NH, int n_threads,
                       uint64_t site_key, float p_drop, int bf16);
/* dqkv (rows of km, 3C): writes dQ of the queries, accumulates dK, dV at [0, t1). dout
 * and out are in qm's rows, dout only those of [t0, t1). Slots of attention_scratch_floats(T, C/NH, 1) floats. bf16:
 * dout holds bf16 values; the probabilities and the score gradient (before the
 * 1/sqrt(hd) scale, which the products apply) are rounded to bf16 before their
 * products, and the rows of [0, t1) of dqkv are rounded after this pass's sums. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *out, const float *lse, const RowMap *km, const RowMap *qm,
                        const int64_t *mask, int t0, int t1, int C, int NH, int n_threads, uint64_t site_key,
                        float p_drop, int bf16);

#endif
