/*
 * cache.c — the embedding cache written by `ipr embed` and read by training.
 *
 * Format (version 1), little-endian:
 *   offset 0    header, 256 bytes:
 *                 char magic[8] "IPREMBC1"; u32 version; u32 header_size (256);
 *                 u64 file_size; u64 checksum (XXH3_64 of [256, file_size));
 *                 u64 n; u64 dim; u64 encoder_checksum; u64 data_checksum;
 *                 u64 off_ids; u64 len_ids; u64 off_x; char encoder_name[64];
 *                 zero padding.
 *   off_ids     n ids, each NUL-terminated, back to back (len_ids bytes).
 *   off_x       f32[n][dim], 64-byte aligned.
 * Every field is checked against the file size before use.
 */
#include "ipr/encoder.h"
#include "ipr/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define CACHE_MAGIC "IPREMBC1"
#define CACHE_VERSION 1u
#define CACHE_HDR 256u

struct cache_hdr {
    char magic[8];
    uint32_t version, header_size;
    uint64_t file_size, checksum, n, dim, encoder_checksum, data_checksum, off_ids, len_ids, off_x;
    char encoder_name[64];
    uint8_t pad[CACHE_HDR - 16 - 72 - 64];
};
_Static_assert(sizeof(struct cache_hdr) == CACHE_HDR, "cache header is 256 bytes");

static uint64_t align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

static int write_all(int fd, const void *p, size_t n, XXH3_state_t *st, const char *path)
{
    const char *b = p;
    if (st) XXH3_64bits_update(st, p, n);
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return ipr_error_set(IPR_ERR_IO, "%s: write: %s", path, strerror(errno));
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

int ipr_embed_cache_write(const char *path, const char *encoder_name, uint64_t encoder_checksum,
                          uint64_t data_checksum, size_t n, size_t dim,
                          const char *const *ids, const float *x)
{
    struct cache_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CACHE_MAGIC, 8);
    h.version = CACHE_VERSION;
    h.header_size = CACHE_HDR;
    h.n = n;
    h.dim = dim;
    h.encoder_checksum = encoder_checksum;
    h.data_checksum = data_checksum;
    snprintf(h.encoder_name, sizeof h.encoder_name, "%s", encoder_name ? encoder_name : "");
    uint64_t len_ids = 0;
    for (size_t i = 0; i < n; i++) len_ids += strlen(ids[i]) + 1;
    h.off_ids = CACHE_HDR;
    h.len_ids = len_ids;
    h.off_x = align64(h.off_ids + len_ids);
    h.file_size = h.off_x + (uint64_t)n * dim * sizeof(float);

    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    XXH3_state_t *st = XXH3_createState();
    if (!tmp || !st) {
        free(tmp);
        if (st) XXH3_freeState(st);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    sprintf(tmp, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp), rc = IPR_OK;
    if (fd < 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        XXH3_freeState(st);
        return rc;
    }
    fchmod(fd, 0644);
    XXH3_64bits_reset(st);
    static const char zero[64];
    if ((rc = write_all(fd, &h, sizeof h, NULL, tmp))) goto fail;
    for (size_t i = 0; i < n; i++)
        if ((rc = write_all(fd, ids[i], strlen(ids[i]) + 1, st, tmp))) goto fail;
    if ((rc = write_all(fd, zero, (size_t)(h.off_x - h.off_ids - len_ids), st, tmp))) goto fail;
    if (n && dim && (rc = write_all(fd, x, n * dim * sizeof(float), st, tmp))) goto fail;
    h.checksum = XXH3_64bits_digest(st);
    if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || fsync(fd) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: write/fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    XXH3_freeState(st);
    return IPR_OK;
fail:
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    XXH3_freeState(st);
    return rc;
}

void ipr_embed_cache_free(struct ipr_embed_cache *c)
{
    if (!c) return;
    free(c->ids ? c->ids[0] : NULL); /* one block holds every id */
    free(c->ids);
    free(c->x);
    free(c);
}

int ipr_embed_cache_read(const char *path, struct ipr_embed_cache **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return ipr_error_set(errno == ENOENT ? IPR_ERR_NOTFOUND : IPR_ERR_IO, "%s: %s", path, strerror(errno));
    struct cache_hdr h;
    struct stat sb;
    int rc = IPR_OK;
    struct ipr_embed_cache *c = NULL;
    char *idbuf = NULL;
    if (fstat(fileno(f), &sb) != 0 || fread(&h, 1, sizeof h, f) != sizeof h) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: truncated embedding cache (no header)", path);
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (memcmp(h.magic, CACHE_MAGIC, 8) != 0) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: not an embedding cache", path); goto done; }
    if (h.version != CACHE_VERSION) {
        rc = ipr_error_set(IPR_ERR_VERSION, "%s: embedding cache version %u, expected %u", path, h.version, CACHE_VERSION);
        goto done;
    }
    if (h.header_size != CACHE_HDR || h.file_size != size || h.off_ids != CACHE_HDR || h.len_ids > size ||
        h.off_x != align64(h.off_ids + h.len_ids) || h.off_x > size || h.dim > (1u << 20) ||
        (h.dim && h.n > (size - h.off_x) / h.dim / 4) || h.off_x + h.n * h.dim * 4 != size ||
        (h.n && h.len_ids < h.n) || memchr(h.encoder_name, 0, sizeof h.encoder_name) == NULL) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: inconsistent embedding cache header (truncated?)", path);
        goto done;
    }
    size_t body = (size_t)(size - CACHE_HDR);
    idbuf = malloc(body ? body : 1);
    if (!idbuf) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto done; }
    if (fread(idbuf, 1, body, f) != body) { rc = ipr_error_set(IPR_ERR_IO, "%s: short read", path); goto done; }
    if (XXH3_64bits(idbuf, body) != h.checksum) { rc = ipr_error_set(IPR_ERR_CHECKSUM, "%s: checksum mismatch: corrupted", path); goto done; }
    c = calloc(1, sizeof *c);
    if (!c) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto done; }
    c->n = (size_t)h.n;
    c->dim = (size_t)h.dim;
    c->encoder_checksum = h.encoder_checksum;
    c->data_checksum = h.data_checksum;
    memcpy(c->encoder_name, h.encoder_name, sizeof c->encoder_name);
    c->ids = calloc(c->n ? c->n : 1, sizeof *c->ids);
    c->x = malloc(c->n * c->dim * sizeof(float) + 1);
    if (!c->ids || !c->x) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto done; }
    memcpy(c->x, idbuf + (h.off_x - CACHE_HDR), c->n * c->dim * sizeof(float));
    size_t p = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *z = memchr(idbuf + p, 0, (size_t)h.len_ids - p);
        if (!z) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: id %zu is not terminated", path, i); goto done; }
        c->ids[i] = idbuf + p;
        p = (size_t)(z - idbuf) + 1;
    }
    if (p != h.len_ids) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: id section holds more than %zu ids", path, c->n); goto done; }
    if (c->n == 0) { free(idbuf); idbuf = NULL; c->ids[0] = NULL; }
    else idbuf = NULL; /* owned by c->ids[0] */
done:
    fclose(f);
    if (rc) {
        if (c) { free(c->ids); free(c->x); free(c); }
        c = NULL;
    }
    free(idbuf);
    *out = c;
    return rc;
}
