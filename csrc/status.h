/* What a core function reports back. The core never prints or exits: module.c turns a
 * status into the Python exception (ValueError, MemoryError, FloatingPointError). */
#ifndef COCONUT_STATUS_H
#define COCONUT_STATUS_H

typedef enum {
    CORE_OK = 0,
    CORE_BAD_INPUT,      /* the caller's data breaks a rule; a message names where */
    CORE_OUT_OF_MEMORY,
    CORE_NOT_FINITE,     /* a loss or a logit overflowed: its gradient would be garbage */
    CORE_NO_SUPERVISED,  /* every label is -100: the mean loss has no term */
} CoreStatus;

#endif
