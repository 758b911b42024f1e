/* Every heap allocation of the core goes through these, so that tests can reach the
 * out-of-memory paths (make the n-th allocation fail) and see that each error path
 * frees what it took (count the blocks still held). Both cost one atomic operation. */
#ifndef COCONUT_ALLOC_H
#define COCONUT_ALLOC_H

#include <stddef.h>

void *core_malloc(size_t bytes);
void *core_calloc(size_t n, size_t size);
/* A large block on 2 MiB boundaries, backed by huge pages where the OS grants them: the
 * activations are read at strides of a whole time step (B*3C floats), which on 4 KiB
 * pages costs a TLB miss per row. Freed by core_free. */
void *core_malloc_huge(size_t bytes);
void core_free(void *p);

/* After n more successful allocations the next one returns NULL, once; n < 0 disarms.
 * Returns the previous countdown (-1: not armed, or it already fired). */
long core_fail_allocations_after(long n);
/* Blocks allocated and not yet freed. */
long core_live_allocations(void);

#endif
