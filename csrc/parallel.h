/* When a loop is worth the OpenMP threads. */
#ifndef COCONUT_PARALLEL_H
#define COCONUT_PARALLEL_H

#include <stddef.h>

/* Loops over fewer elements than this run on one thread: waking a second thread costs
 * more than it saves, and far more when another process holds the other core. */
#define PAR_GRAIN 32768
#define PAR_IF(work) if ((size_t)(work) >= PAR_GRAIN)

#endif
