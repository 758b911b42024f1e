/* Thoughts: the loss/forward drivers that run every pass of a batch's plan (row_plan.h)
 * forward and then every pass backward, with what each thought mode does between
 * passes (soft thoughts' mixtures, Jacobi copies' masks). */
#ifndef COCONUT_THOUGHTS_H
#define COCONUT_THOUGHTS_H

#include "gpt2.h"
#include "row_plan.h"

/* Every pass of the plan forward (generate.c runs the prompt's passes so). bt's mask
 * must be writable memory (the plan's or the caller's): a Jacobi plan changes which
 * copies it lets attention see, and leaves the last copy live. */
void forward_passes(Ctx *c, const Batch *bt, const RowPlan *p);

/* What the loss's forward leaves its backward: the supervised rows' ln_f outputs and
 * their loss gradient (h, then N*C more floats under backward), targets and rows. */
typedef struct {
    float *h;
    int64_t *tg;
    size_t *rows;
    long N;
} LossState;

/* Runs the passes forward, writes the hidden cells' states (bt->hid_out), and the loss
 * at supervised positions, with (if backward) the LM head's gradients (into c->g.wte and
 * ls). CORE_NO_SUPERVISED (checked before any pass), CORE_OUT_OF_MEMORY or
 * CORE_NOT_FINITE (the gradients of wte may then hold a partial sum) otherwise. The
 * caller calls loss_state_free in any case. */
CoreStatus loss_forward(Ctx *c, const Batch *bt, const RowPlan *p, int backward, float grad_scale, double *loss,
                        long *n_supervised, LossState *ls);
/* After a backward loss_forward that returned CORE_OK: every pass backward in reverse,
 * with bt->hid_grad (if set) added to the hidden cells' gradients, accumulating into
 * c->g. Between the two calls the caller may set bt->hid_grad from bt->hid_out. */
void loss_backward(Ctx *c, const Batch *bt, const RowPlan *p, const LossState *ls);
void loss_state_free(LossState *ls);

/* Logits (B, real_T, V) of every position of the caller's batch after all passes (NULL:
 * only the passes), and the hidden cells' states (bt->hid_out); bt has the full row map (logits are wanted at every cell). It cannot
 * fail: it works in the arena acts_reserve laid out, and the logits are handed back as
 * they are, finite or not. */
void run_forward(Ctx *c, const Batch *bt, const RowPlan *p, float *logits);

#endif
