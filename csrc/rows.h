/* Which cells (example b, position t) of a batch own a row in the activations, and
 * where. Rows are time-major: the rows of positions [t0, t1) are one contiguous block
 * [first[t0], first[t1]), so a pass of the thought schedule stays one product per
 * weight. The full map gives every cell a row (row t*B + b), for forward and decoding,
 * where every cell's logits are wanted. A packed map keeps only some cells: the loss
 * packs the cells its layers need (no padding) and, apart, those whose output is read
 * (row_plan.c), so no kernel or product spends work on the others. */
#ifndef COCONUT_ROWS_H
#define COCONUT_ROWS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int B, T;
    const int32_t *row;    /* (B,T) batch-major: row of each cell, -1 for none; NULL: full map */
    const int32_t *first;  /* (T+1) first row of each position, first[T] = all rows */
    const int32_t *cell;   /* (rows) b*T + t of each row */
} RowMap;

/* the full map of a (B,T) batch: row t*B + b for every cell */
static inline RowMap rows_full(int B, int T) {
    return (RowMap){B, T, NULL, NULL, NULL};
}

static inline size_t rows_first(const RowMap *m, int t) {
    return m->row ? (size_t)m->first[t] : (size_t)t * m->B;
}

/* the row of cell i = b*T + t, -1 if it has none */
static inline long rows_of_cell(const RowMap *m, size_t i) {
    return m->row ? (long)m->row[i] : (long)(i % m->T) * m->B + (long)(i / m->T);
}

static inline long rows_of(const RowMap *m, int b, int t) {
    return rows_of_cell(m, (size_t)b * m->T + t);
}

/* b*T + t of row r: the batch-major index that dropout masks and inputs are keyed by */
static inline size_t rows_cell(const RowMap *m, size_t r) {
    return m->row ? (size_t)m->cell[r] : (r % m->B) * m->T + r / m->B;
}

/* Builds the packed map of a (B,T) batch in row (B*T), first (T+1) and cell (B*T).
 * On entry row[b*T+t] is nonzero where the cell keeps a row; on return it holds the
 * row, or -1. Returns the number of rows. */
size_t rows_pack(RowMap *m, int B, int T, int32_t *row, int32_t *first, int32_t *cell);

#endif
