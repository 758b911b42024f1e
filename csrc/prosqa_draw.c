#include "prosqa_draw.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

#define ENTITY_LABEL 1   /* descendant of node 0 */
#define OTHER_LABEL 2    /* descendant of node 1 */

struct ProsQAWork {
    int G, E, pool_size;
    /* the grown graph: node i's parents are par[par_start[i] .. par_start[i + 1]) */
    int *par_start, *par, *label, *depth, *cand, *new_id;
    double *weight, *cum;
    /* the kept graph and what is drawn on it */
    int *edges, *child_start, *child, *fill, *dist[2], *bfs, *own[2], *list;
    int *parentless, *named, *pool, *sampled, *symbol, *order, *path, *level_start, *level;
    unsigned char *flag;
    uint64_t *ways;
};

ProsQAWork *prosqa_work_new(const ProsQADrawSettings *s) {
    int G = s->grown_nodes < 2 ? 2 : s->grown_nodes, E = G * (G - 1) / 2 + 1;
    int pool = s->n_persons > s->n_concepts ? s->n_persons : s->n_concepts;
    if (pool < 1) pool = 1;
    ProsQAWork *w = core_calloc(1, sizeof *w);
    if (!w) return NULL;
    w->G = G, w->E = E, w->pool_size = pool;
    /* one block: ints first, then doubles, 64-bit counts and flags at their alignment */
    size_t ints = (size_t)(G + 1) * 3 + (size_t)E * 6 + (size_t)G * 15 + (size_t)pool * 2;
    size_t bytes = ints * sizeof(int) + sizeof(double) * 2 * G + sizeof(uint64_t) * (G + 1) + (size_t)pool + 64;
    char *block = core_calloc(bytes, 1);
    if (!block) {
        core_free(w);
        return NULL;
    }
    int *p = (int *)block;
#define TAKE(field, count) (w->field = p, p += (count))
    TAKE(par_start, G + 1), TAKE(par, E), TAKE(label, G), TAKE(depth, G), TAKE(cand, G), TAKE(new_id, G);
    TAKE(edges, 2 * E), TAKE(child_start, G + 1), TAKE(child, E), TAKE(fill, G), TAKE(dist[0], G);
    TAKE(dist[1], G), TAKE(bfs, G), TAKE(own[0], G), TAKE(own[1], G), TAKE(list, G);
    TAKE(parentless, G), TAKE(named, G), TAKE(pool, pool), TAKE(sampled, pool), TAKE(symbol, G);
    TAKE(order, E), TAKE(path, G), TAKE(level_start, G + 1), TAKE(level, E);
#undef TAKE
    char *q = (char *)p;
    q += (8 - (uintptr_t)q % 8) % 8;
    w->weight = (double *)q, q += sizeof(double) * G;
    w->cum = (double *)q, q += sizeof(double) * G;
    w->ways = (uint64_t *)q, q += sizeof(uint64_t) * (G + 1);
    w->flag = (unsigned char *)q;
    return w;
}

void prosqa_work_free(ProsQAWork *w) {
    if (!w) return;
    core_free(w->par_start);   /* the block's start */
    core_free(w);
}

/* Knuth's method, as the Python generator draws it. */
static int poisson(PyRandom *r, double mean) {
    double limit = exp(-mean), product = py_random_double(r);
    int k = 0;
    while (product > limit) k++, product *= py_random_double(r);
    return k;
}

/* bisect.bisect_right(a, x, 0, hi) */
static int bisect_right(const double *a, double x, int hi) {
    int lo = 0;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (x < a[mid]) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* _grow_graph: nodes 2 .. G - 1 each draw their parents among the nodes before them. */
static void grow(PyRandom *r, const ProsQADrawSettings *s, ProsQAWork *w) {
    int G = w->G, n_par = 0;
    w->par_start[0] = w->par_start[1] = w->par_start[2] = 0;
    w->label[0] = ENTITY_LABEL, w->label[1] = OTHER_LABEL, w->depth[0] = w->depth[1] = 0;
    for (int node = 2; node < G; node++) {
        int want = poisson(r, s->mean_parents);
        if (want > s->max_parents) want = s->max_parents;   /* below 0: none, as range() of it */
        double draw = py_random_double(r);
        int only = draw < s->p_only_entity_family ? ENTITY_LABEL
                   : draw < s->p_only_entity_family + s->p_only_other_family ? OTHER_LABEL : 0;
        int nc = 0;
        for (int i = 0; i < node; i++)
            if (!only || w->label[i] == only) w->cand[nc] = i, w->weight[nc] = s->depth_weight * w->depth[i] + 1, nc++;
        int label = 0, min_depth = -1, take = want < nc ? want : nc;
        for (int t = 0; t < take; t++) {   /* one weighted pick at a time, without replacement */
            double total = 0;
            for (int i = 0; i < nc; i++) w->cum[i] = total += w->weight[i];
            int pick = bisect_right(w->cum, py_random_double(r) * (w->cum[nc - 1] + 0.0), nc - 1);
            int p = w->cand[pick];
            memmove(w->cand + pick, w->cand + pick + 1, sizeof(int) * (nc - pick - 1));
            memmove(w->weight + pick, w->weight + pick + 1, sizeof(double) * (nc - pick - 1));
            nc--;
            w->par[n_par++] = p;
            label |= w->label[p];
            if (min_depth < 0 || w->depth[p] < min_depth) min_depth = w->depth[p];
        }
        w->par_start[node + 1] = n_par;
        w->label[node] = label;
        w->depth[node] = 1 + min_depth;
    }
}

/* Children lists of the current edges, each in edge order. */
static void children_of(ProsQAWork *w, int n, int n_edges) {
    memset(w->child_start, 0, sizeof(int) * (n + 1));
    for (int e = 0; e < n_edges; e++) w->child_start[w->edges[2 * e] + 1]++;
    for (int i = 0; i < n; i++) w->child_start[i + 1] += w->child_start[i];
    memcpy(w->fill, w->child_start, sizeof(int) * n);
    for (int e = 0; e < n_edges; e++) w->child[w->fill[w->edges[2 * e]]++] = w->edges[2 * e + 1];
}

/* Breadth-first edge counts from `start` (-1: not reached); the visiting order in w->bfs. */
static int distances(ProsQAWork *w, int n, int start, int *dist) {
    for (int i = 0; i < n; i++) dist[i] = -1;
    dist[start] = 0, w->bfs[0] = start;
    int count = 1;
    for (int f = 0; f < count; f++) {
        int node = w->bfs[f];
        for (int c = w->child_start[node]; c < w->child_start[node + 1]; c++)
            if (dist[w->child[c]] < 0) dist[w->child[c]] = dist[node] + 1, w->bfs[count++] = w->child[c];
    }
    return count;
}

/* random.sample(range(size), k) into out, with CPython's two ways of drawing. */
static void sample(PyRandom *r, ProsQAWork *w, int size, int k, int *out) {
    double setsize = 21;
    if (k > 5) setsize += pow(4.0, ceil(log((double)k * 3) / log(4.0)));
    if (size <= setsize) {
        for (int i = 0; i < size; i++) w->pool[i] = i;
        for (int i = 0; i < k; i++) {
            int j = (int)py_random_below(r, (uint32_t)(size - i));
            out[i] = w->pool[j];
            w->pool[j] = w->pool[size - i - 1];
        }
    } else {
        memset(w->flag, 0, (size_t)size);
        for (int i = 0; i < k; i++) {
            int j;
            do j = (int)py_random_below(r, (uint32_t)size);
            while (w->flag[j]);
            w->flag[j] = 1;
            out[i] = j;
        }
    }
}

/* One graph and the question on it, or 0 where the Python generator's _try_example
 * returns None; -1: the name pools are too small. */
static int try_question(PyRandom *r, const ProsQADrawSettings *s, ProsQAWork *w, ProsQADraw *out) {
    grow(r, s, w);
    int G = w->G, n = 0, n_edges = 0;
    /* drop parentless nodes nobody links to (nodes 0 and 1 stay), renumbering the rest */
    memset(w->fill, 0, sizeof(int) * G);
    for (int e = 0; e < w->par_start[G]; e++) w->fill[w->par[e]] = 1;
    for (int i = 0; i < G; i++)
        w->new_id[i] = (w->par_start[i + 1] > w->par_start[i] || w->fill[i] || i < 2) ? n++ : -1;
    for (int i = 0; i < G; i++) {
        if (w->new_id[i] < 0) continue;
        w->label[w->new_id[i]] = w->label[i];   /* new ids never exceed old ones */
        for (int e = w->par_start[i]; e < w->par_start[i + 1]; e++)
            w->edges[2 * n_edges] = w->new_id[w->par[e]], w->edges[2 * n_edges + 1] = w->new_id[i], n_edges++;
    }
    if (n < s->min_nodes || n > s->max_nodes || n_edges < s->min_edges) return 0;
    children_of(w, n, n_edges);
    int n_own[2] = {0, 0}, deepest[2] = {-1, -1};
    for (int root = 0; root < 2; root++) {
        distances(w, n, root, w->dist[root]);
        for (int i = 0; i < n; i++)
            if (w->child_start[i + 1] == w->child_start[i] && w->label[i] == (root ? OTHER_LABEL : ENTITY_LABEL)) {
                w->own[root][n_own[root]++] = i;
                if (w->dist[root][i] > deepest[root]) deepest[root] = w->dist[root][i];
            }
    }
    if (!n_own[0] || !n_own[1]) return 0;
    int entity = deepest[0] > deepest[1] ? 0 : deepest[1] > deepest[0] ? 1 : (int)py_random_below(r, 2);
    int other = 1 - entity;
    if (deepest[entity] < s->min_steps || deepest[entity] > s->max_steps) return 0;
    int n_deep = 0;
    for (int i = 0; i < n_own[entity]; i++)
        if (w->dist[entity][w->own[entity][i]] == deepest[entity]) w->list[n_deep++] = w->own[entity][i];
    out->target = w->list[py_random_below(r, (uint32_t)n_deep)];
    out->neg_target = w->own[other][py_random_below(r, (uint32_t)n_own[other])];
    int root = py_random_double(r) < s->p_root_id_one ? 1 : 0;
    if (root != entity)   /* the entity takes the drawn id; targets are leaves, never 0 or 1 */
        for (int e = 0; e < 2 * n_edges; e++)
            if (w->edges[e] < 2) w->edges[e] = 1 - w->edges[e];
    children_of(w, n, n_edges);

    memset(w->fill, 0, sizeof(int) * n);
    for (int e = 0; e < n_edges; e++) w->fill[w->edges[2 * e + 1]] = 1;   /* has a parent */
    int n_persons = 0, n_named = 0;
    for (int i = 0; i < n; i++) {
        if (w->fill[i]) w->named[n_named++] = i;
        else w->parentless[n_persons++] = i;
    }
    out->n_nodes = n;
    if (n_persons > s->n_persons || n_named > s->n_concepts) return -1;
    sample(r, w, s->n_persons, n_persons, w->sampled);
    for (int i = 0; i < n_persons; i++) w->symbol[w->parentless[i]] = w->sampled[i];
    sample(r, w, s->n_concepts, n_named, w->sampled);
    for (int i = 0; i < n_named; i++) w->symbol[w->named[i]] = s->n_persons + w->sampled[i];

    for (int e = 0; e < n_edges; e++) w->order[e] = e;
    for (int i = n_edges - 1; i > 0; i--) {   /* random.shuffle */
        int j = (int)py_random_below(r, (uint32_t)(i + 1)), t = w->order[i];
        w->order[i] = w->order[j], w->order[j] = t;
    }
    out->options_swapped = py_random_below(r, 2) == 0;   /* shuffling [target, neg_target] */

    /* random.choice over every shortest root -> target path, enumerated as the Python
     * generator lists them: grouped by the target's parents on the level above (in the
     * order breadth-first search finds them), each group by its parent's paths */
    int *dist = w->dist[0], reached = distances(w, n, root, dist);
    memset(w->level_start, 0, sizeof(int) * (n + 1));
    for (int f = 0; f < reached; f++)
        for (int c = w->child_start[w->bfs[f]]; c < w->child_start[w->bfs[f] + 1]; c++)
            if (dist[w->child[c]] == dist[w->bfs[f]] + 1) w->level_start[w->child[c] + 1]++;
    for (int i = 0; i < n; i++) w->level_start[i + 1] += w->level_start[i];
    memcpy(w->fill, w->level_start, sizeof(int) * n);
    for (int f = 0; f < reached; f++)
        for (int c = w->child_start[w->bfs[f]]; c < w->child_start[w->bfs[f] + 1]; c++)
            if (dist[w->child[c]] == dist[w->bfs[f]] + 1) w->level[w->fill[w->child[c]]++] = w->bfs[f];
    for (int f = 0; f < reached; f++) {   /* paths counted in breadth-first order: parents first */
        int v = w->bfs[f];
        uint64_t ways = v == root;
        for (int k = w->level_start[v]; k < w->level_start[v + 1]; k++) ways += w->ways[w->level[k]];
        w->ways[v] = ways > UINT32_MAX ? UINT32_MAX : ways;   /* a 28-node graph has a few thousand */
    }
    uint32_t j = py_random_below(r, (uint32_t)w->ways[out->target]);
    int len = dist[out->target] + 1, v = out->target;
    for (int at = len - 1; at > 0; at--) {
        w->path[at] = v;
        for (int k = w->level_start[v]; k < w->level_start[v + 1]; k++) {
            int parent = w->level[k];
            if (j < w->ways[parent]) {
                v = parent;
                break;
            }
            j -= (uint32_t)w->ways[parent];
        }
    }
    w->path[0] = root;

    out->n_edges = n_edges, out->path_len = len, out->root = root;
    out->symbol = w->symbol, out->edges = w->edges, out->order = w->order, out->path = w->path;
    return 1;
}

int prosqa_draw(PyRandom *rng, const ProsQADrawSettings *s, ProsQAWork *w, ProsQADraw *out) {
    for (int t = 0; t < PROSQA_MAX_TRIES; t++) {
        int got = try_question(rng, s, w, out);
        if (got) return got;
    }
    return 0;
}
