/*
 * import_internal.h — shared pieces of the importers (import*.c); internal.
 */
#ifndef IPR_DATA_IMPORT_INTERNAL_H
#define IPR_DATA_IMPORT_INTERNAL_H

#include "ipr/data.h"

#include <stddef.h>

/* The file stem of a path: basename without ".gz" and one more extension. */
void import_stem(const char *path, char *out, size_t cap);

/* 1 if s[0..len) is valid UTF-8 (utf8proc's rules: no surrogates, no overlongs). */
int import_utf8_ok(const char *s, size_t len);

int import_routerbench(struct ipr_dataset *ds, const char *buf, size_t len, const char *name);
int import_json_scores(struct ipr_dataset *ds, enum ipr_import_format fmt,
                       const char *buf, size_t len, const char *name);

#endif
