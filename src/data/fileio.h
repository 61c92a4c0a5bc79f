/*
 * fileio.h — internal helpers of the data module: whole-file reads (gzip
 * transparently) and atomic writes (temporary file in the target's directory,
 * fsync, rename). Not part of the public API.
 */
#ifndef IPR_DATA_FILEIO_H
#define IPR_DATA_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* Largest file (after decompression) the data readers accept. */
#ifndef IPR_DATA_MAX_FILE
#define IPR_DATA_MAX_FILE ((size_t)1 << 31)
#endif

/* Reads the whole file into a malloc'd buffer with a NUL byte appended (not
 * counted in *len). A file starting with the gzip magic is decompressed. If
 * path does not exist but path + ".gz" does, that file is read instead. On
 * failure returns a negative ipr_err with the message set; *buf is NULL. */
int data_read_file(const char *path, char **buf, size_t *len);

/* Writes len bytes to path atomically: a temporary file in path's directory,
 * written, fsynced and renamed over path; gzip-compressed when path ends in
 * ".gz". On failure the temporary file is removed, path is untouched, and a
 * negative ipr_err is returned with the message set. */
int data_write_file(const char *path, const char *data, size_t len);

#endif
