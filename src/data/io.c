/*
 * io.c — whole-file reads (with transparent gzip) and atomic writes for
 * the data module. Shipped data may be gzip'd to stay small; every reader in
 * the module goes through data_read_file so "x.jsonl" and "x.jsonl.gz" read
 * the same.
 */
#include "ipr/io.h"
#include "ipr/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static int read_plain(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ipr_error_set(errno == ENOENT ? IPR_ERR_NOTFOUND : IPR_ERR_IO,
                             "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        cap = (size_t)st.st_size + 1;
    char *b = malloc(cap);
    if (!b) { fclose(f); return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > IPR_FILE_MAX) {
                free(b); fclose(f);
                return ipr_error_set(IPR_ERR_LIMIT, "%s: file larger than %zu bytes", path, (size_t)IPR_FILE_MAX);
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); fclose(f); return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path); }
            b = nb; cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(b); return ipr_error_set(IPR_ERR_IO, "%s: read error", path); }
    b[n] = '\0';
    *buf = b; *len = n;
    return IPR_OK;
}

static int gunzip(const char *path, const char *in, size_t in_len, char **buf, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return ipr_error_set(IPR_ERR_NOMEM, "%s: cannot start gzip decoder", path);
    size_t cap = in_len * 4 + 1024, n = 0;
    char *b = malloc(cap);
    if (!b) { inflateEnd(&z); return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path); }
    z.next_in = (Bytef *)(uintptr_t)in;
    size_t left = in_len;
    int rc = Z_OK;
    for (;;) {
        if (z.avail_in == 0 && left > 0) {
            z.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;
            left -= z.avail_in;
        }
        if (cap - n < 2) {
            if (cap > IPR_FILE_MAX) { rc = Z_MEM_ERROR; break; }
            char *nb = realloc(b, cap * 2);
            if (!nb) { rc = Z_MEM_ERROR; break; }
            b = nb; cap *= 2;
        }
        size_t room = cap - 1 - n;
        z.next_out = (Bytef *)b + n;
        z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = z.avail_out;
        rc = inflate(&z, Z_NO_FLUSH);
        n += before - z.avail_out;
        if (rc == Z_STREAM_END) {
            /* concatenated gzip members are legal: continue if input remains */
            if (z.avail_in == 0 && left == 0) break;
            if (inflateReset(&z) != Z_OK) { rc = Z_DATA_ERROR; break; }
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) break;
        if (rc == Z_BUF_ERROR && z.avail_in == 0 && left == 0) { rc = Z_DATA_ERROR; break; }
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(b);
        if (rc == Z_MEM_ERROR)
            return ipr_error_set(IPR_ERR_LIMIT, "%s: decompressed data too large", path);
        return ipr_error_set(IPR_ERR_FORMAT, "%s: corrupt or truncated gzip data", path);
    }
    b[n] = '\0';
    *buf = b; *len = n;
    return IPR_OK;
}

int ipr_file_read(const char *path, char **buf, size_t *len)
{
    *buf = NULL; *len = 0;
    char *raw; size_t n;
    int rc = read_plain(path, &raw, &n);
    if (rc == IPR_ERR_NOTFOUND) {
        size_t pl = strlen(path);
        char *gz = malloc(pl + 4);
        if (!gz) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        memcpy(gz, path, pl); memcpy(gz + pl, ".gz", 4);
        struct stat st;
        if (stat(gz, &st) == 0) {
            rc = read_plain(gz, &raw, &n);
        } else {
            ipr_error_set(IPR_ERR_NOTFOUND, "%s: no such file", path);
        }
        free(gz);
    }
    if (rc != IPR_OK) return rc;
    if (n >= 2 && (unsigned char)raw[0] == 0x1f && (unsigned char)raw[1] == 0x8b) {
        rc = gunzip(path, raw, n, buf, len);
        free(raw);
        return rc;
    }
    *buf = raw; *len = n;
    return IPR_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

static void sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return;
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(copy);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int ipr_file_write(const char *path, const char *data, size_t len)
{
    char *zbuf = NULL;
    if (ends_with(path, ".gz")) {
        if (len > (size_t)UINT32_MAX / 2)
            return ipr_error_set(IPR_ERR_LIMIT, "%s: %zu bytes is too large to gzip in one piece", path, len);
        z_stream z;
        memset(&z, 0, sizeof z);
        if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
            return ipr_error_set(IPR_ERR_NOMEM, "%s: cannot start gzip encoder", path);
        size_t cap = deflateBound(&z, (uLong)len) + 64;
        zbuf = malloc(cap);
        if (!zbuf) { deflateEnd(&z); return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path); }
        z.next_in = (Bytef *)(uintptr_t)data; z.avail_in = (uInt)len;
        z.next_out = (Bytef *)zbuf; z.avail_out = (uInt)cap;
        int zr = deflate(&z, Z_FINISH);
        size_t out = cap - z.avail_out;
        deflateEnd(&z);
        if (zr != Z_STREAM_END) { free(zbuf); return ipr_error_set(IPR_ERR_IO, "%s: gzip failed", path); }
        data = zbuf; len = out;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp) { free(zbuf); return ipr_error_set(IPR_ERR_NOMEM, "out of memory"); }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp); free(zbuf);
        return ipr_error_set(IPR_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    int rc = IPR_OK;
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        close(fd);
    } else if (close(fd) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    } else if (rename(tmp, path) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
    } else {
        sync_dir(path); /* make the rename itself durable */
    }
    if (rc != IPR_OK) unlink(tmp);
    free(tmp); free(zbuf);
    return rc;
}
