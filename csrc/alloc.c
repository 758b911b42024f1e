/* madvise is POSIX/BSD, outside strict C11 */
#define _DEFAULT_SOURCE
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

static atomic_long countdown = -1;
static atomic_long live = 0;

/* 1 if this allocation is the one a test asked to fail */
static int should_fail(void) {
    if (atomic_load_explicit(&countdown, memory_order_relaxed) < 0) return 0;
    return atomic_fetch_sub(&countdown, 1) == 0;
}

void *core_malloc(size_t bytes) {
    void *p = should_fail() ? NULL : malloc(bytes);
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *core_malloc_huge(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return core_malloc(bytes);
    size_t rounded = (bytes + huge - 1) / huge * huge;   /* aligned_alloc wants a multiple */
    void *p = should_fail() ? NULL : aligned_alloc(huge, rounded);
    if (!p) return NULL;
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE);   /* advice only: a refusal leaves 4 KiB pages */
#endif
    return p;
}

void *core_calloc(size_t n, size_t size) {
    void *p = should_fail() ? NULL : calloc(n, size);
    if (p) atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void core_free(void *p) {
    if (!p) return;
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}

long core_fail_allocations_after(long n) {
    long prev = atomic_exchange(&countdown, n < 0 ? -1 : n);
    return prev < 0 ? -1 : prev;
}

long core_live_allocations(void) { return atomic_load(&live); }
