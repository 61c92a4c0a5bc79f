/*
 * glove_convert.c — converts a wink-embeddings JSON document
 *   {"dimensions": D, "size": N, "words": [...],
 *    "vectors": {word: [D floats, l2 norm, frequency index], ...}, "unkVector": [...]}
 * into the encoder file described in glove_impl.h.
 *
 * The document (307 MB for GloVe 6B 100-d) is never held whole: a small
 * streaming JSON reader walks it through a 64 KiB buffer, skipping what it
 * does not need and keeping only the word strings and the float vectors
 * (N * D * 4 bytes). Words take their id from the frequency index, so id ==
 * frequency rank. The file is written to a temporary file in the target's
 * directory, fsynced and renamed: a failure or interruption never leaves a
 * half-written encoder file behind.
 */
#include "encoder/glove_impl.h"
#include "ipr/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_WORD_BYTES 4096
#define MAX_ROW 8192

struct rd {
    FILE *f;
    const char *what;
    size_t pos, len;
    uint64_t consumed; /* bytes before buf[0] */
    unsigned char buf[1 << 16];
    char word[MAX_WORD_BYTES];
    float row[MAX_ROW];
};

static int rd_fill(struct rd *r)
{
    r->consumed += r->len;
    r->len = fread(r->buf, 1, sizeof r->buf, r->f);
    r->pos = 0;
    return r->len > 0;
}

/* Next byte or -1 at end. */
static inline int rd_get(struct rd *r)
{
    if (r->pos == r->len && !rd_fill(r)) return -1;
    return r->buf[r->pos++];
}

static inline int rd_peek(struct rd *r)
{
    if (r->pos == r->len && !rd_fill(r)) return -1;
    return r->buf[r->pos];
}

static int rd_err(struct rd *r, const char *what)
{
    return ipr_error_set(IPR_ERR_FORMAT, "%s: byte %llu: %s", r->what,
                         (unsigned long long)(r->consumed + r->pos), what);
}

static int skip_ws(struct rd *r)
{
    for (;;) {
        int c = rd_peek(r);
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') r->pos++;
        else return c;
    }
}

static int expect(struct rd *r, int ch)
{
    if (skip_ws(r) != ch) {
        char m[48];
        snprintf(m, sizeof m, "expected '%c'", ch);
        return rd_err(r, m);
    }
    r->pos++;
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_u4(struct rd *r, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(rd_get(r));
        if (h < 0) return rd_err(r, "bad \\u escape");
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Reads a JSON string into out (cap bytes, NUL-terminated); *n = length.
 * out may be NULL to skip. */
static int read_string(struct rd *r, char *out, size_t cap, size_t *n)
{
    if (skip_ws(r) != '"') return rd_err(r, "expected a string");
    r->pos++;
    size_t k = 0;
    for (;;) {
        int c = rd_get(r);
        if (c < 0) return rd_err(r, "unterminated string");
        if (c == '"') break;
        unsigned char tmp[4];
        size_t tn = 1;
        tmp[0] = (unsigned char)c;
        if (c == '\\') {
            int e = rd_get(r);
            switch (e) {
            case '"': case '\\': case '/': tmp[0] = (unsigned char)e; break;
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (read_u4(r, &cp)) return IPR_ERR_FORMAT;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (rd_get(r) != '\\' || rd_get(r) != 'u' || read_u4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        cp = 0xFFFD;
                    else
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = 0xFFFD;
                }
                if (cp < 0x80) { tmp[0] = (unsigned char)cp; tn = 1; }
                else if (cp < 0x800) { tmp[0] = (unsigned char)(0xC0 | cp >> 6); tmp[1] = (unsigned char)(0x80 | (cp & 63)); tn = 2; }
                else if (cp < 0x10000) { tmp[0] = (unsigned char)(0xE0 | cp >> 12); tmp[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
                                         tmp[2] = (unsigned char)(0x80 | (cp & 63)); tn = 3; }
                else { tmp[0] = (unsigned char)(0xF0 | cp >> 18); tmp[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
                       tmp[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)); tmp[3] = (unsigned char)(0x80 | (cp & 63)); tn = 4; }
                break;
            }
            default: return rd_err(r, "bad escape in string");
            }
        }
        if (out) {
            if (k + tn + 1 > cap) return rd_err(r, "string too long");
            memcpy(out + k, tmp, tn);
        }
        k += tn;
    }
    if (out) out[k] = '\0';
    if (n) *n = k;
    return 0;
}

/* Copies the characters of a JSON number into tmp (cap bytes, NUL-ended). */
static int read_number_text(struct rd *r, char *tmp, size_t cap)
{
    size_t k = 0;
    skip_ws(r);
    for (;;) {
        int c = rd_peek(r);
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
            if (k + 1 >= cap) return rd_err(r, "number too long");
            tmp[k++] = (char)c;
            r->pos++;
        } else {
            break;
        }
    }
    if (!k) return rd_err(r, "expected a number");
    tmp[k] = '\0';
    return 0;
}

static int read_number(struct rd *r, double *out)
{
    char tmp[64], *end;
    int rc = read_number_text(r, tmp, sizeof tmp);
    if (rc) return rc;
    *out = strtod(tmp, &end);
    if (*end || !isfinite(*out)) return rd_err(r, "bad number");
    return 0;
}

/* Reads a float from the same syntax, rounded once (strtof). */
static int read_float(struct rd *r, float *out)
{
    char tmp[64], *end;
    int rc = read_number_text(r, tmp, sizeof tmp);
    if (rc) return rc;
    *out = strtof(tmp, &end);
    if (*end || !isfinite(*out)) return rd_err(r, "bad number");
    return 0;
}

static int skip_value(struct rd *r, int depth)
{
    if (depth > 64) return rd_err(r, "nesting too deep");
    int c = skip_ws(r);
    if (c == '"') return read_string(r, NULL, 0, NULL);
    if (c == '{' || c == '[') {
        int close = c == '{' ? '}' : ']';
        r->pos++;
        if (skip_ws(r) == close) { r->pos++; return 0; }
        for (;;) {
            if (c == '{') {
                if (read_string(r, NULL, 0, NULL) || expect(r, ':')) return IPR_ERR_FORMAT;
            }
            if (skip_value(r, depth + 1)) return IPR_ERR_FORMAT;
            int d = skip_ws(r);
            r->pos++;
            if (d == ',') continue;
            if (d == close) return 0;
            return rd_err(r, "expected ',' or a closing bracket");
        }
    }
    if (c == 't' || c == 'f' || c == 'n') {
        while ((c = rd_peek(r)) >= 'a' && c <= 'z') r->pos++;
        return 0;
    }
    double d;
    return read_number(r, &d);
}

struct conv {
    uint32_t dim;          /* 0 until known */
    size_t n, cap;         /* words read */
    float *vec;            /* (cap, dim) in reading order */
    uint32_t *index;       /* (cap) frequency index of each */
    uint64_t *soff;        /* (cap + 1) offsets into str */
    char *str; size_t str_len, str_cap;
};

static int conv_push(struct conv *c, const char *w, size_t wn, const float *row, uint32_t idx)
{
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4096;
        float *v = realloc(c->vec, nc * c->dim * sizeof *v);
        if (v) c->vec = v;
        uint32_t *ix = realloc(c->index, nc * sizeof *ix);
        if (ix) c->index = ix;
        uint64_t *so = realloc(c->soff, (nc + 1) * sizeof *so);
        if (so) c->soff = so;
        if (!v || !ix || !so) return ipr_error_set(IPR_ERR_NOMEM, "convert: out of memory");
        c->cap = nc;
    }
    if (c->str_len + wn > c->str_cap) {
        size_t nc = c->str_cap ? c->str_cap : 1 << 20;
        while (nc < c->str_len + wn) nc *= 2;
        char *s = realloc(c->str, nc);
        if (!s) return ipr_error_set(IPR_ERR_NOMEM, "convert: out of memory");
        c->str = s;
        c->str_cap = nc;
    }
    memcpy(c->vec + c->n * c->dim, row, c->dim * sizeof *row);
    c->index[c->n] = idx;
    c->soff[c->n] = c->str_len;
    memcpy(c->str + c->str_len, w, wn);
    c->str_len += wn;
    c->n++;
    c->soff[c->n] = c->str_len;
    return 0;
}

static int read_vectors(struct rd *r, struct conv *c, uint64_t size_hint)
{
    char *word = r->word;
    float *row = r->row;
    /* trust the "size" member for one allocation only while it is modest (2 GiB);
     * beyond that grow with the data actually read */
    if (size_hint && c->dim && size_hint < (1u << 28) && size_hint * c->dim * sizeof(float) <= ((uint64_t)1 << 31)) {
        c->cap = (size_t)size_hint;
        c->vec = malloc(c->cap * c->dim * sizeof *c->vec);
        c->index = malloc(c->cap * sizeof *c->index);
        c->soff = malloc((c->cap + 1) * sizeof *c->soff);
        if (!c->vec || !c->index || !c->soff) return ipr_error_set(IPR_ERR_NOMEM, "convert: out of memory");
    }
    if (expect(r, '{')) return IPR_ERR_FORMAT;
    if (skip_ws(r) == '}') { r->pos++; return 0; }
    for (;;) {
        size_t wn;
        if (read_string(r, word, MAX_WORD_BYTES, &wn) || expect(r, ':') || expect(r, '[')) return IPR_ERR_FORMAT;
        size_t k = 0;
        if (skip_ws(r) != ']') {
            for (;;) {
                if (k == MAX_ROW) return rd_err(r, "vector too long");
                if (read_float(r, &row[k++])) return IPR_ERR_FORMAT;
                int d = skip_ws(r);
                r->pos++;
                if (d == ',') continue;
                if (d == ']') break;
                return rd_err(r, "expected ',' or ']' in a vector");
            }
        } else {
            r->pos++;
        }
        if (!c->dim) {
            if (k < 3) return rd_err(r, "vector too short");
            c->dim = (uint32_t)(k - 2);
        }
        if (k != c->dim + 2) {
            char m[96];
            snprintf(m, sizeof m, "vector of \"%.32s\" has %zu numbers, expected %u + 2", word, k, c->dim);
            return rd_err(r, m);
        }
        float fi = row[c->dim + 1];
        if (!(fi >= 0) || fi != floorf(fi) || fi >= 4294967295.0f) return rd_err(r, "bad word index");
        if (conv_push(c, word, wn, row, (uint32_t)fi)) return IPR_ERR_NOMEM;
        int d = skip_ws(r);
        r->pos++;
        if (d == ',') continue;
        if (d == '}') return 0;
        return rd_err(r, "expected ',' or '}' in vectors");
    }
}

static size_t align_up(size_t x) { return (x + GLOVE_ALIGN - 1) & ~(size_t)(GLOVE_ALIGN - 1); }

struct wr {
    int fd;
    uint64_t off;
    XXH3_state_t *st;
    const char *path;
};

static int wr_put(struct wr *w, const void *p, size_t n)
{
    const char *b = p;
    XXH3_64bits_update(w->st, p, n);
    while (n) {
        ssize_t k = write(w->fd, b, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return ipr_error_set(IPR_ERR_IO, "%s: write: %s", w->path, strerror(errno));
        }
        b += k;
        n -= (size_t)k;
        w->off += (uint64_t)k;
    }
    return 0;
}

static int wr_pad(struct wr *w)
{
    static const char zero[GLOVE_ALIGN];
    size_t pad = align_up(w->off) - w->off;
    return pad ? wr_put(w, zero, pad) : 0;
}

static int write_file(struct conv *c, const char *out_path, const char *source)
{
    uint32_t n = (uint32_t)c->n, dim = c->dim;
    /* rank -> position in reading order */
    uint32_t *pos = malloc((size_t)n * sizeof *pos);
    uint32_t *stroff = malloc(((size_t)n + 1) * sizeof *stroff);
    uint32_t cap = 1;
    while (cap < 2 * n) cap *= 2;
    uint64_t *table = calloc(cap, sizeof *table);
    XXH3_state_t *st = XXH3_createState();
    char *tmp = malloc(strlen(out_path) + 32);
    int fd = -1, rc = IPR_OK;
    if (tmp) tmp[0] = '\0';
    if (!pos || !stroff || !table || !st || !tmp) { rc = ipr_error_set(IPR_ERR_NOMEM, "convert: out of memory"); goto done; }
    memset(pos, 0xff, (size_t)n * sizeof *pos);
    for (uint32_t i = 0; i < n; i++) {
        if (c->index[i] >= n || pos[c->index[i]] != UINT32_MAX) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "convert: word index %u is out of range or repeated", c->index[i]);
            goto done;
        }
        pos[c->index[i]] = i;
    }
    if (c->str_len > UINT32_MAX) { rc = ipr_error_set(IPR_ERR_LIMIT, "convert: word strings too long"); goto done; }
    uint32_t so = 0;
    for (uint32_t id = 0; id < n; id++) {
        uint32_t p = pos[id];
        const char *w = c->str + c->soff[p];
        size_t wn = (size_t)(c->soff[p + 1] - c->soff[p]);
        stroff[id] = so;
        so += (uint32_t)wn;
        uint64_t h = XXH3_64bits(w, wn);
        uint32_t slot = (uint32_t)(h & (cap - 1));
        for (;;) {
            uint64_t e = table[slot];
            if (!e) break;
            uint32_t q = pos[(uint32_t)e - 1];
            if (c->soff[q + 1] - c->soff[q] == wn && memcmp(c->str + c->soff[q], w, wn) == 0) {
                rc = ipr_error_set(IPR_ERR_FORMAT, "convert: word \"%.*s\" appears twice", (int)(wn > 40 ? 40 : wn), w);
                goto done;
            }
            slot = (slot + 1) & (cap - 1);
        }
        table[slot] = (h >> 32) << 32 | (uint64_t)(id + 1);
    }
    stroff[n] = so;

    struct glove_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, GLOVE_MAGIC, 8);
    h.version = GLOVE_VERSION;
    h.header_size = GLOVE_HDR_SIZE;
    h.word_dim = dim;
    h.n_words = n;
    h.table_cap = cap;
    h.n_hash = GLOVE_N_HASH;
    h.ngram_min = GLOVE_NGRAM_MIN;
    h.ngram_max = GLOVE_NGRAM_MAX;
    h.n_stats = GLOVE_N_STATS;
    h.tail_tokens = GLOVE_TAIL_TOKENS;
    h.out_dim = 2 * dim + GLOVE_N_HASH + GLOVE_N_STATS;
    h.sif_a = GLOVE_SIF_A;
    h.hash_seed = GLOVE_HASH_SEED;
    h.off_table = GLOVE_HDR_SIZE;
    h.off_stroff = align_up(h.off_table + (uint64_t)cap * 8);
    h.off_strings = align_up(h.off_stroff + ((uint64_t)n + 1) * 4);
    h.len_strings = so;
    h.off_vectors = align_up(h.off_strings + so);
    h.file_size = h.off_vectors + (uint64_t)n * dim * 4;
    if (n == 341479) snprintf(h.name, sizeof h.name, "glove6b-%ud+hash", dim);
    else snprintf(h.name, sizeof h.name, "glove-%uw-%ud+hash", n, dim);
    snprintf(h.source, sizeof h.source, "%s", source ? source : "");

    /* An unnamed O_TMPFILE vanishes by itself if we are interrupted; it gets
     * a name only once complete and fsynced. Where the file system lacks
     * O_TMPFILE, a named temporary file removed on failure is used. */
    {
        char *dcopy = strdup(out_path);
        fd = dcopy ? open(dirname(dcopy), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644) : -1;
        free(dcopy);
    }
    int anon = fd >= 0;
    if (anon) {
        tmp[0] = '\0';
    } else {
        sprintf(tmp, "%s.tmpXXXXXX", out_path);
        fd = mkstemp(tmp);
        if (fd < 0) { rc = ipr_error_set(IPR_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto done; }
    }
    const char *shown = anon ? out_path : tmp;
    fchmod(fd, 0644);
    /* the checksum covers the header too: the body's hash is seeded with
     * the hash of the header whose checksum field is zero */
    XXH3_64bits_reset_withSeed(st, XXH3_64bits(&h, sizeof h));
    struct wr w = { fd, 0, st, shown };
    static const uint8_t zero_hdr[GLOVE_HDR_SIZE];
    if (write(fd, zero_hdr, GLOVE_HDR_SIZE) != (ssize_t)GLOVE_HDR_SIZE) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: write: %s", shown, strerror(errno));
        goto done;
    }
    w.off = GLOVE_HDR_SIZE;
    if ((rc = wr_put(&w, table, (size_t)cap * 8)) || (rc = wr_pad(&w)) ||
        (rc = wr_put(&w, stroff, ((size_t)n + 1) * 4)) || (rc = wr_pad(&w)))
        goto done;
    for (uint32_t id = 0; id < n; id++) {
        uint32_t p = pos[id];
        if ((rc = wr_put(&w, c->str + c->soff[p], (size_t)(c->soff[p + 1] - c->soff[p])))) goto done;
    }
    if ((rc = wr_pad(&w))) goto done;
    for (uint32_t id = 0; id < n; id++)
        if ((rc = wr_put(&w, c->vec + (size_t)pos[id] * dim, (size_t)dim * 4))) goto done;
    if (w.off != h.file_size) { rc = ipr_error_set(IPR_ERR_IO, "%s: size mismatch while writing", shown); goto done; }
    h.checksum = XXH3_64bits_digest(st);
    if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h || fsync(fd) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: write/fsync: %s", shown, strerror(errno));
        goto done;
    }
    if (anon) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        sprintf(tmp, "%s.tmp%ld", out_path, (long)getpid());
        unlink(tmp); /* a stale one from a crashed process with our pid */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0) {
            rc = ipr_error_set(IPR_ERR_IO, "%s: cannot name the finished file: %s", tmp, strerror(errno));
            tmp[0] = '\0';
            goto done;
        }
    }
    close(fd);
    fd = -1;
    if (rename(tmp, out_path) != 0) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: rename to %s: %s", tmp, out_path, strerror(errno));
        goto done;
    }
    tmp[0] = '\0'; /* renamed: nothing to clean up */
    {
        char *dcopy = strdup(out_path);
        if (dcopy) {
            int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
            if (dfd >= 0) { fsync(dfd); close(dfd); }
            free(dcopy);
        }
    }
done:
    if (fd >= 0) close(fd);
    if (rc && tmp && tmp[0]) unlink(tmp);
    free(tmp);
    free(pos);
    free(stroff);
    free(table);
    if (st) XXH3_freeState(st);
    return rc;
}

int glove_convert_stream(FILE *f, const char *what, const char *out_path, const char *source)
{
    struct rd *r = calloc(1, sizeof *r);
    struct conv c;
    memset(&c, 0, sizeof c);
    if (!r) return ipr_error_set(IPR_ERR_NOMEM, "convert: out of memory");
    r->f = f;
    r->what = what;
    int rc = IPR_OK;
    double dims = 0, size = 0;
    int have_vectors = 0;
    if ((rc = expect(r, '{'))) goto done;
    if (skip_ws(r) == '}') { rc = rd_err(r, "empty document"); goto done; }
    for (;;) {
        char key[64];
        size_t kn;
        if ((rc = read_string(r, key, sizeof key, &kn)) == IPR_OK) {
            if ((rc = expect(r, ':'))) goto done;
        } else {
            goto done;
        }
        if (strcmp(key, "dimensions") == 0) {
            if ((rc = read_number(r, &dims))) goto done;
            if (dims < 1 || dims > MAX_ROW - 2 || dims != floor(dims)) { rc = rd_err(r, "bad dimensions"); goto done; }
            if (c.dim && c.dim != (uint32_t)dims) { rc = rd_err(r, "dimensions disagree with the vectors"); goto done; }
            c.dim = (uint32_t)dims;
        } else if (strcmp(key, "size") == 0) {
            if ((rc = read_number(r, &size))) goto done;
        } else if (strcmp(key, "vectors") == 0) {
            if (have_vectors) { rc = rd_err(r, "two \"vectors\" members"); goto done; }
            have_vectors = 1;
            if ((rc = read_vectors(r, &c, size > 0 && size < 1e9 ? (uint64_t)size : 0))) goto done;
        } else if ((rc = skip_value(r, 0))) {
            goto done;
        }
        int d = skip_ws(r);
        r->pos++;
        if (d == ',') continue;
        if (d == '}') break;
        rc = rd_err(r, "expected ',' or '}' at top level");
        goto done;
    }
    if (ferror(f)) { rc = ipr_error_set(IPR_ERR_IO, "%s: read error", what); goto done; }
    if (!have_vectors || c.n == 0) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: no \"vectors\" in the document", what); goto done; }
    if (size > 0 && (double)c.n != size) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: \"size\" says %.0f words, \"vectors\" holds %zu", what, size, c.n);
        goto done;
    }
    if (c.n >= (1u << 28)) { rc = ipr_error_set(IPR_ERR_LIMIT, "%s: too many words", what); goto done; }
    rc = write_file(&c, out_path, source);
done:
    free(c.vec);
    free(c.index);
    free(c.soff);
    free(c.str);
    free(r);
    return rc;
}
