/*
 * io.h — whole-file reads (gzip transparently) and atomic writes (temporary
 * file in the target's directory, fsync, rename, fsync of the directory), used
 * by every module that reads or writes the project's files.
 */
#ifndef IPR_IO_H
#define IPR_IO_H

#include <stddef.h>
#include <stdio.h>

/* Largest file (after decompression) the data readers accept. */
#ifndef IPR_FILE_MAX
#define IPR_FILE_MAX ((size_t)1 << 31)
#endif

/* Reads the whole file into a malloc'd buffer with a NUL byte appended (not
 * counted in *len). A file starting with the gzip magic is decompressed. If
 * path does not exist but path + ".gz" does, that file is read instead. On
 * failure returns a negative ipr_err with the message set; *buf is NULL. */
int ipr_file_read(const char *path, char **buf, size_t *len);

/* Writes len bytes to path atomically: a temporary file in path's directory,
 * written, fsynced and renamed over path; gzip-compressed when path ends in
 * ".gz". On failure the temporary file is removed, path is untouched, and a
 * negative ipr_err is returned with the message set. */
int ipr_file_write(const char *path, const char *data, size_t len);

#endif
