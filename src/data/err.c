/*
 * err.c — error strings and the thread-local last-error message (see err.h).
 */
#include "ipr/err.h"

#include <stdio.h>
#include <string.h>

#define MSG_CAP 1024

static _Thread_local char msg[MSG_CAP];
static _Thread_local int msg_err;

const char *ipr_strerror(int err)
{
    switch (err) {
    case IPR_OK:           return "ok";
    case IPR_ERR_NOMEM:    return "out of memory";
    case IPR_ERR_IO:       return "input/output error";
    case IPR_ERR_FORMAT:   return "malformed input";
    case IPR_ERR_INVAL:    return "invalid argument";
    case IPR_ERR_LIMIT:    return "limit exceeded";
    case IPR_ERR_UPSTREAM: return "upstream failure";
    case IPR_ERR_NOTFOUND: return "not found";
    case IPR_ERR_VERSION:  return "unsupported version";
    case IPR_ERR_CHECKSUM: return "checksum mismatch";
    case IPR_ERR_TIMEOUT:  return "timed out";
    case IPR_ERR_PREDICT:  return "prediction failed";
    default:               return "unknown error";
    }
}

int ipr_error_set(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    msg_err = err;
    return err;
}

int ipr_error_wrap(int err, const char *fmt, ...)
{
    char prefix[512], old[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, ipr_error_message(), MSG_CAP);
    old[MSG_CAP - 1] = '\0';
    snprintf(msg, sizeof msg, "%.500s: %.500s", prefix, old);
    msg_err = err;
    return err;
}

const char *ipr_error_message(void)
{
    if (msg[0] == '\0')
        return ipr_strerror(msg_err);
    return msg;
}

void ipr_error_clear(void)
{
    msg[0] = '\0';
    msg_err = IPR_OK;
}
