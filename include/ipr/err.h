/*
 * err.h — error codes and the last-error message.
 *
 * Every library function that can fail returns an int: IPR_OK (0) or one of the
 * negative codes below. The function that detects a failure also records a
 * human-readable message (file, line, what was expected) in a thread-local
 * buffer with ipr_error_set(); callers print it with ipr_error_message(). A
 * caller that adds context wraps the message with ipr_error_wrap().
 */
#ifndef IPR_ERR_H
#define IPR_ERR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ipr_err {
    IPR_OK           = 0,
    IPR_ERR_NOMEM    = -1,  /* allocation failed */
    IPR_ERR_IO       = -2,  /* open/read/write/rename failed */
    IPR_ERR_FORMAT   = -3,  /* malformed input: JSON, CSV, binary file */
    IPR_ERR_INVAL    = -4,  /* invalid argument or value (label outside [0,1], tau...) */
    IPR_ERR_LIMIT    = -5,  /* a configured size or count limit was exceeded */
    IPR_ERR_UPSTREAM = -6,  /* an upstream model endpoint failed */
    IPR_ERR_NOTFOUND = -7,  /* unknown model, router, id or file */
    IPR_ERR_VERSION  = -8,  /* file of an unsupported version */
    IPR_ERR_CHECKSUM = -9,  /* checksum mismatch: corrupted or wrong file */
    IPR_ERR_TIMEOUT  = -10, /* deadline passed */
    IPR_ERR_PREDICT  = -11, /* the quality estimator produced no usable value */
};

/* Static description of a code ("out of memory", ...). Never NULL. */
const char *ipr_strerror(int err);

/* Records a formatted message for this thread and returns err, so a failing
 * function can write `return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: ...", ...)`. */
int ipr_error_set(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with "<context>: " and returns err. */
int ipr_error_wrap(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread, or ipr_strerror(code) of the last
 * code when none was given. Valid until the next ipr_error_set on the thread. */
const char *ipr_error_message(void);

/* Forgets the last message. */
void ipr_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
