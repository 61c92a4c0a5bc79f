/*
 * glove_file.c — maps a GloVe encoder file (format in glove_impl.h), checks
 * every offset and length against the file size before any pointer goes in,
 * verifies the checksum, and looks words up in its hash table.
 */
#include "encoder/glove_impl.h"
#include "ipr/err.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
/* inlined XXH3 (the same values as the library's): a word lookup hashes a
 * few bytes, where a library call costs as much as the hash */
#define XXH_INLINE_ALL
#include <xxhash.h>

int32_t glove_lookup(const struct glove *g, const char *w, size_t n)
{
    uint64_t h = XXH3_64bits(w, n);
    uint64_t mask = g->h->table_cap - 1;
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint64_t i = h & mask, probes = 0; probes <= mask; i = (i + 1) & mask, probes++) {
        uint64_t e = g->table[i];
        if (!e) return -1;
        if ((uint32_t)(e >> 32) != tag) continue;
        uint32_t id = (uint32_t)e - 1;
        uint32_t a = g->stroff[id], b = g->stroff[id + 1];
        if (b - a != n) continue;
        const char *q = g->strings + a;
        size_t k = 0;
        while (k < n && q[k] == w[k]) k++; /* words are short: no call */
        if (k == n) return (int32_t)id;
    }
    return -1;
}

static int sec_ok(uint64_t off, uint64_t len, uint64_t file_size)
{
    return off % GLOVE_ALIGN == 0 && off >= GLOVE_HDR_SIZE && off <= file_size && len <= file_size - off;
}

static int validate(const char *path, const uint8_t *map, size_t size, struct glove *g)
{
    if (size < GLOVE_HDR_SIZE)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: truncated encoder file (%zu bytes, header needs %u)",
                             path, size, GLOVE_HDR_SIZE);
    const struct glove_hdr *h = (const struct glove_hdr *)map;
    if (memcmp(h->magic, GLOVE_MAGIC, 8) != 0)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: not an ipr encoder file (bad magic)", path);
    if (h->version != GLOVE_VERSION)
        return ipr_error_set(IPR_ERR_VERSION, "%s: encoder file version %u, this ipr reads version %u "
                             "(re-run `ipr encoder fetch`)", path, h->version, GLOVE_VERSION);
    if (h->header_size != GLOVE_HDR_SIZE)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: header size %u, expected %u", path, h->header_size, GLOVE_HDR_SIZE);
    if (h->file_size != size)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: file is %zu bytes but its header says %llu (truncated or appended to)",
                             path, size, (unsigned long long)h->file_size);
    if (h->word_dim == 0 || h->word_dim > 4096 || h->n_words == 0 || h->n_words > (1u << 28) ||
        h->table_cap < h->n_words || (h->table_cap & (h->table_cap - 1)) != 0 ||
        h->n_hash > 65536 || h->n_stats > 1024 || h->ngram_min < 1 || h->ngram_max < h->ngram_min ||
        h->ngram_max > 16 || h->tail_tokens == 0 ||
        h->out_dim != 2 * h->word_dim + h->n_hash + h->n_stats || !(h->sif_a > 0) || !isfinite(h->sif_a))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: inconsistent encoder header (dims %u/%u/%u/%u, words %u, table %u)",
                             path, h->word_dim, h->n_hash, h->n_stats, h->out_dim, h->n_words, h->table_cap);
    if (memchr(h->name, 0, sizeof h->name) == NULL || memchr(h->source, 0, sizeof h->source) == NULL)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: unterminated name in encoder header", path);
    uint64_t fs = h->file_size;
    if (!sec_ok(h->off_table, (uint64_t)h->table_cap * 8, fs) ||
        !sec_ok(h->off_stroff, ((uint64_t)h->n_words + 1) * 4, fs) ||
        !sec_ok(h->off_strings, h->len_strings, fs) ||
        !sec_ok(h->off_vectors, (uint64_t)h->n_words * h->word_dim * 4, fs))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: a section lies outside the file (%llu bytes)",
                             path, (unsigned long long)fs);
    struct glove_hdr zh = *h;
    zh.checksum = 0;
    uint64_t sum = XXH3_64bits_withSeed(map + GLOVE_HDR_SIZE, size - GLOVE_HDR_SIZE, XXH3_64bits(&zh, sizeof zh));
    if (sum != h->checksum)
        return ipr_error_set(IPR_ERR_CHECKSUM, "%s: checksum mismatch (file %016llx, computed %016llx): corrupted",
                             path, (unsigned long long)h->checksum, (unsigned long long)sum);
    g->map = map;
    g->map_len = size;
    g->h = h;
    g->table = (const uint64_t *)(map + h->off_table);
    g->stroff = (const uint32_t *)(map + h->off_stroff);
    g->strings = (const char *)(map + h->off_strings);
    g->vectors = (const float *)(map + h->off_vectors);
    /* structure: offsets monotone and inside the string section; table ids valid */
    if (g->stroff[0] != 0 || g->stroff[h->n_words] != h->len_strings)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: bad word string offsets", path);
    for (uint32_t i = 0; i < h->n_words; i++)
        if (g->stroff[i + 1] < g->stroff[i])
            return ipr_error_set(IPR_ERR_FORMAT, "%s: word string offsets not increasing at word %u", path, i);
    uint64_t used = 0;
    for (uint32_t i = 0; i < h->table_cap; i++) {
        uint64_t e = g->table[i];
        if (!e) continue;
        if ((uint32_t)e == 0 || (uint32_t)e > h->n_words)
            return ipr_error_set(IPR_ERR_FORMAT, "%s: hash table slot %u names word %u of %u",
                                 path, i, (uint32_t)e, h->n_words);
        used++;
    }
    if (used != h->n_words || used == h->table_cap)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: hash table holds %llu entries for %u words",
                             path, (unsigned long long)used, h->n_words);
    double H = 0;
    for (uint32_t r = 1; r <= h->n_words; r++) H += 1.0 / r;
    g->zipf_h = (float)H;
    return IPR_OK;
}

int glove_open_file(const char *path, struct glove **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ipr_error_set(errno == ENOENT ? IPR_ERR_NOTFOUND : IPR_ERR_IO, "%s: cannot open encoder file: %s%s",
                             path, strerror(errno), errno == ENOENT ? " (run `ipr encoder fetch`)" : "");
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ipr_error_set(IPR_ERR_IO, "%s: stat: %s", path, strerror(e));
    }
    size_t size = (size_t)st.st_size;
    if (size < GLOVE_HDR_SIZE) {
        close(fd);
        return ipr_error_set(IPR_ERR_FORMAT, "%s: truncated encoder file (%zu bytes, header needs %u)",
                             path, size, GLOVE_HDR_SIZE);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return ipr_error_set(IPR_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    struct glove *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(map, size);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    int rc = validate(path, map, size, g);
    if (rc) {
        munmap(map, size);
        free(g);
        return rc;
    }
    *out = g;
    return IPR_OK;
}

void glove_close_file(struct glove *g)
{
    if (!g) return;
    if (g->map) munmap((void *)g->map, g->map_len);
    free(g);
}
