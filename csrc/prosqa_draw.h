/* The ProsQA generator's draws in C: coconut/data/prosqa_generator.py draw for draw
 * (the same CPython random stream, the same order of draws), so that both write the
 * same questions; Python turns a draw into sentences. About seven times faster than the
 * Python draws, so that an epoch's 12,000 fresh questions no longer hold a core the
 * step's threads need. */
#ifndef COCONUT_PROSQA_DRAW_H
#define COCONUT_PROSQA_DRAW_H

#include <stdint.h>

#include "py_random.h"

/* ProsQASettings' fields; INT_MAX stands for None. */
typedef struct {
    int grown_nodes;
    double mean_parents, p_only_entity_family, p_only_other_family, depth_weight;
    int min_steps, max_steps;
    double p_root_id_one;
    int max_parents, min_nodes, max_nodes, min_edges;
    int n_persons, n_concepts;   /* the name pools' sizes */
} ProsQADrawSettings;

#define PROSQA_MAX_GROWN_NODES 1024
#define PROSQA_MAX_TRIES 100000   /* graphs drawn before a question's settings are given up on */

/* One question's graph and the choices made on it, in node ids after the entity took the
 * id the draw gave it. `symbol[i]`: node i's name, persons' indices first, then the
 * concepts' (n_persons + j). `order`: the edge sentences' order in the question. */
typedef struct {
    int n_nodes, n_edges, path_len, root, target, neg_target, options_swapped;
    int *symbol, *edges /* (src, dst) pairs */, *order, *path;
} ProsQADraw;

typedef struct ProsQAWork ProsQAWork;

/* Scratch and output space for graphs of s->grown_nodes nodes (NULL: out of memory). */
ProsQAWork *prosqa_work_new(const ProsQADrawSettings *s);
void prosqa_work_free(ProsQAWork *w);

/* The question of `rng` (already seeded as the Python generator seeds it): redraws
 * graphs until one qualifies. The result points into `w`, valid until the next call.
 * Returns 1; 0 where no graph qualified in PROSQA_MAX_TRIES; -1 where the name pools
 * are too small for a graph of out->n_nodes nodes (the Python generator raises then). */
int prosqa_draw(PyRandom *rng, const ProsQADrawSettings *s, ProsQAWork *w, ProsQADraw *out);

#endif
