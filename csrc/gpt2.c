#include "gpt2.h"

#include "alloc.h"
#include "attention.h"
#include "bf16.h"
#include "kernels.h"

void param_layout(const GPT2Shape *s, ParamLayout *o) {
    size_t L = s->n_layer, C = s->n_embd, V = s->vocab_size, P = s->n_positions;
    size_t at = 0;
#define TAKE(field, n) do { o->field = at; at += (n); } while (0)
    TAKE(wte, V * C);
    TAKE(wpe, P * C);
    TAKE(ln1_w, L * C);
    TAKE(ln1_b, L * C);
    TAKE(qkv_w, L * C * 3 * C);
    TAKE(qkv_b, L * 3 * C);
    TAKE(attproj_w, L * C * C);
    TAKE(attproj_b, L * C);
    TAKE(ln2_w, L * C);
    TAKE(ln2_b, L * C);
    TAKE(fc_w, L * C * 4 * C);
    TAKE(fc_b, L * 4 * C);
    TAKE(fcproj_w, L * 4 * C * C);
    TAKE(fcproj_b, L * C);
    TAKE(lnf_w, C);
    TAKE(lnf_b, C);
    size_t H = s->prj_hidden > 0 ? (size_t)s->prj_hidden : 0, HC = H ? C : 0;
    TAKE(prj_fc1_w, H * C);
    TAKE(prj_fc1_b, H);
    TAKE(prj_fc2_w, HC * H);
    TAKE(prj_fc2_b, HC);
    TAKE(prj_ln_w, HC);
    TAKE(prj_ln_b, HC);
#undef TAKE
    o->total = at;
}

void param_pointers(const ParamLayout *l, float *m, ParamPtrs *o) {
    o->wte = m + l->wte;           o->wpe = m + l->wpe;
    o->ln1_w = m + l->ln1_w;       o->ln1_b = m + l->ln1_b;
    o->qkv_w = m + l->qkv_w;       o->qkv_b = m + l->qkv_b;
    o->attproj_w = m + l->attproj_w; o->attproj_b = m + l->attproj_b;
    o->ln2_w = m + l->ln2_w;       o->ln2_b = m + l->ln2_b;
    o->fc_w = m + l->fc_w;         o->fc_b = m + l->fc_b;
    o->fcproj_w = m + l->fcproj_w; o->fcproj_b = m + l->fcproj_b;
    o->lnf_w = m + l->lnf_w;       o->lnf_b = m + l->lnf_b;
    o->prj_fc1_w = m + l->prj_fc1_w; o->prj_fc1_b = m + l->prj_fc1_b;
    o->prj_fc2_w = m + l->prj_fc2_w; o->prj_fc2_b = m + l->prj_fc2_b;
    o->prj_ln_w = m + l->prj_ln_w; o->prj_ln_b = m + l->prj_ln_b;
}

/* Lays every activation tensor out in one arena; with base == NULL it only counts.
 * Without backward only the key/value cache (qkv, lse) and ln_f output (thoughts read
 * it) must outlive a pass: the other per-layer tensors of all layers share one set. */
static size_t acts_carve(Acts *a, const GPT2Shape *s, int B, int T, int need_backward, int n_threads,
                         int bf16, float *base) {
    size_t TB = (size_t)T * B, C = s->n_embd, NH = s->n_head, at = 0;
#define CARVE(ptr, n) do { ptr = base ? base + at : NULL; at += (n); } while (0)
    CARVE(a->emb, TB * C);
    for (int l = 0; l < s->n_layer; l++) {
        LayerActs *la = &a->layers[l];
        if (!need_backward && l > 0) {
            LayerActs *first = &a->layers[0];
            CARVE(la->qkv, TB * 3 * C);
            CARVE(la->lse, (size_t)B * NH * T);
            la->ln1 = first->ln1; la->ln1_mean = first->ln1_mean; la->ln1_rstd = first->ln1_rstd;
            la->atty = first->atty; la->res1 = first->res1; la->ln2 = first->ln2;
            la->ln2_mean = first->ln2_mean; la->ln2_rstd = first->ln2_rstd;
            la->fch = first->fch; la->gelu = first->gelu; la->res2 = first->res2;
            la->dqkv = la->d_attproj = la->d_fc = la->d_fcproj = NULL;
            continue;
        }
        CARVE(la->ln1, TB * C);
        CARVE(la->ln1_mean, TB);
        CARVE(la->ln1_rstd, TB);
        CARVE(la->qkv, TB * 3 * C);
        CARVE(la->atty, TB * C);
        CARVE(la->lse, (size_t)B * NH * T);
        CARVE(la->res1, TB * C);
        CARVE(la->ln2, TB * C);
        CARVE(la->ln2_mean, TB);
        CARVE(la->ln2_rstd, TB);
        CARVE(la->fch, TB * 4 * C);
        CARVE(la->gelu, TB * 4 * C);
        CARVE(la->res2, TB * C);
        if (need_backward) {
            CARVE(la->dqkv, TB * 3 * C);
            CARVE(la->d_attproj, TB * C);
            CARVE(la->d_fc, TB * 4 * C);
            CARVE(la->d_fcproj, TB * C);
        } else {
            la->dqkv = la->d_attproj = la->d_fc = la->d_fcproj = NULL;
        }
    }
    CARVE(a->lnf, TB * C);
    CARVE(a->lnf_mean, TB);
    CARVE(a->lnf_rstd, TB);
    CARVE(a->s_attn, (size_t)n_threads * attention_scratch_floats(T, (int)(C / NH), need_backward));
    a->w_bf16 = a->s_dw_bf16 = NULL;
    if (bf16) {
        ParamLayout lay;
        param_layout(s, &lay);
        CARVE(a->w_bf16, lay.total);
        size_t V = s->vocab_size;
        if (need_backward) CARVE(a->s_dw_bf16, V * C > 4 * C * C ? V * C : 4 * C * C);
    }
    if (need_backward) {
        CARVE(a->dlnf, TB * C);
        CARVE(a->s_dres, TB * C);
        CARVE(a->s_dx, TB * C);
        CARVE(a->s_dbig, TB * C);
        CARVE(a->s_dres_out, TB * C);
    } else {
        a->dlnf = a->s_dres = a->s_dx = a->s_dbig = a->s_dres_out = NULL;
    }
#undef CARVE
    return at;
}

CoreStatus acts_reserve(Acts *a, const GPT2Shape *s, int B, int T, int need_backward, int n_threads,
                        int bf16) {
    if (!a->layers) {
        a->layers = core_calloc((size_t)s->n_layer, sizeof(LayerActs));
        if (!a->layers) return CORE_OUT_OF_MEMORY;
    }
    /* attention runs one task per (batch row, head): more threads than that would idle */
    if (n_threads > B * s->n_head) n_threads = B * s->n_head;
    size_t need = acts_carve(a, s, B, T, need_backward, n_threads, bf16, NULL);
    if (need > a->arena_floats) {
        core_free(a->arena);
        a->arena = core_malloc_huge(need * sizeof(float));
        a->arena_floats = a->arena ? need : 0;
        if (!a->arena) return CORE_OUT_OF_MEMORY;
    }
    acts_carve(a, s, B, T, need_backward, n_threads, bf16, a->arena);
    a->B = B;
    a->T = T;
    a->attn_threads = n_threads;
    return CORE_OK;
}

void acts_free(Acts *a) {
    core_free(a->arena);
    core_free(a->layers);
    a->arena = NULL;
    a->layers = NULL;
    a->arena_floats = 0;
}

void product_weights(Ctx *c, const ParamLayout *lay) {
    if (!c->bf16) {
        c->pm = c->p;
        return;
    }
    const float *block = c->p.wte - lay->wte; /* p's pointers all lie in one block */
    bf16_round_copy(c->a->w_bf16, block, lay->total);
    param_pointers(lay, c->a->w_bf16, &c->pm);
}
