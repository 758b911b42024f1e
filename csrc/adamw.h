#ifndef COCONUT_ADAMW_H
#define COCONUT_ADAMW_H
#include <stddef.h>
/* One AdamW step on n floats, as torch.optim.AdamW: decoupled decay p *= 1 - lr*wd,
 * moments m, v, bias corrections bc1 = 1 - b1^t and bc2 = 1 - b2^t (from the caller). */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                  float b2, float eps, float wd, double bc1, double bc2);
#endif
