#include "adamw.h"

#include <math.h>

#include "parallel.h"

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                  float b2, float eps, float wd, double bc1, double bc2) {
    float decay = 1.0f - lr * wd;
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    #pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] + (gi - m[i]) * (1.0f - b1);
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
