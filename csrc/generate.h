/* Batched greedy decoding with the key/value cache, thought phase included. */
#ifndef COCONUT_GENERATE_H
#define COCONUT_GENERATE_H

#include "thoughts.h"

/* The batch decoding runs on: the prompts' batch in columns [0, Tp), then max_new - 1
 * empty columns (masked eos), with the full row maps; its arrays are owned here. */
typedef struct {
    Batch bt;
    int64_t *cols;         /* ids, mask, pos: three (B, T) blocks */
    uint8_t *is_thought;
    int32_t *maps;         /* the prompts' src_col and thought_index, where they have them */
} DecodingBatch;

/* CORE_OUT_OF_MEMORY; the caller calls decoding_batch_free in any case. */
CoreStatus decoding_batch(DecodingBatch *d, const Batch *prompts, int max_new, int64_t eos_id);
void decoding_batch_free(DecodingBatch *d);

/* bt holds (B, T) buffers the caller owns, with the full row map (every column is
 * decoded for every example): the left-padded prompts in columns
 * [0, Tp), room for max_new tokens after them. The prompt runs through the thought
 * passes of its plan p (Tp is its batch's T: a Jacobi prompt is unrolled); then each step decodes one column for the whole batch. out (B, max_new)
 * receives new ids (-1 after an example stopped); n_out (B) their counts. As in the
 * reference, the first token is kept even if it is eos; a later eos ends an example
 * and is not kept. An example also ends when its next position would not fit the
 * position table. CORE_OUT_OF_MEMORY, or CORE_NOT_FINITE if a column's logits are not
 * all finite (its argmax would be arbitrary). */
CoreStatus run_generate(Ctx *c, Batch *bt, int Tp, const RowPlan *p, int max_new, int64_t eos_id, int64_t *out,
                        int64_t *n_out);

#endif
