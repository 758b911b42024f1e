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

/* Runs the passes forward, the loss at supervised positions, and (if backward) every
 * pass backward in reverse, accumulating into c->g. CORE_NO_SUPERVISED (checked before
 * any pass), CORE_OUT_OF_MEMORY or CORE_NOT_FINITE (the gradients of wte may then hold
 * a partial sum) otherwise. */
CoreStatus run_loss(Ctx *c, const Batch *bt, const RowPlan *p, int backward, float grad_scale, double *loss,
                    long *n_supervised);

/* Logits (B, real_T, V) of every position of the caller's batch after all passes (NULL:
 * only the passes); bt has the full row map (logits are wanted at every cell). It cannot
 * fail: it works in the arena acts_reserve laid out, and the logits are handed back as
 * they are, finite or not. */
void run_forward(Ctx *c, const Batch *bt, const RowPlan *p, float *logits);

#endif
