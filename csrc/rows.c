#include "rows.h"

size_t rows_pack(RowMap *m, int B, int T, int32_t *row, int32_t *first, int32_t *cell) {
    int32_t n = 0;
    for (int t = 0; t < T; t++) {
        first[t] = n;
        for (int b = 0; b < B; b++) {
            size_t i = (size_t)b * T + t;
            int keep = row[i] != 0;
            row[i] = keep ? n : -1;
            if (keep) cell[n++] = (int32_t)i;
        }
    }
    first[T] = n;
    *m = (RowMap){B, T, row, first, cell};
    return (size_t)n;
}
