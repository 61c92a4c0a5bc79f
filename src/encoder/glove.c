/*
 * glove.c — the default encoder ("glove-hash"): GloVe word vectors pooled
 * with SIF weights, hashed character n-grams and prompt statistics.
 *
 * Output layout (out_dim = 2 D + H + S, recorded in the file; D = 100,
 * H = 256, S = 16 for GloVe 6B):
 *   [0, D)        SIF-weighted mean of the word vectors over the whole prompt,
 *                 L2-normalised. Weight of word w: a / (a + p(w)), p(w) the
 *                 Zipf estimate 1 / ((rank + 1) H_N) from its frequency rank.
 *   [D, 2D)       the same over the last tail_tokens tokens (where the
 *                 question of a few-shot prompt usually is), L2-normalised.
 *   [2D, 2D+H)    signed hashed byte n-grams (ngram_min..ngram_max) of every
 *                 word/number token wrapped in "<" ">", each token's n-grams
 *                 sharing its SIF weight (1 for words outside the
 *                 vocabulary), L2-normalised: "kubernetes" still counts.
 *   [2D+H, +S)    prompt statistics, each scaled into about [0, 1]: see
 *                 stats() below (docs/encoder.md lists them).
 * A block that is all zero (no known word) stays zero.
 *
 * Determinism: one thread, a fixed summation order, no fast-math; so the same
 * text gives the same bits on every run and thread.
 */
#include "encoder/glove_impl.h"
#include "ipr/err.h"
#include "ipr/text.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Four floats, operated on element by element (so the result is the same
 * as the scalar loop's: no reassociation). */
typedef float v4f __attribute__((vector_size(16)));

/* Per-context cache of the n-gram codes of vocabulary words (direct-mapped
 * by word id): frequent words are hashed once per thread, not per use.
 * Replaying the stored codes in order gives the very same sums. */
#define GC_SIZE 4096u
#define GC_MAX  28u
struct gram_entry {
    int32_t id;
    uint16_t n;
    uint16_t code[GC_MAX]; /* slot | sign << 15 */
};

struct ipr_embed_ctx {
    const struct ipr_encoder *enc; /* the encoder it was made for */
    struct ipr_text *text;
    v4f *acc;      /* (2 * D4) accumulators: whole, tail */
    size_t d4;     /* word_dim / 4, rounded up */
    struct gram_entry *gc; /* (GC_SIZE) n-gram cache; NULL if n_hash > 32768 */
};

static int glove_ctx_new(const struct ipr_encoder *enc, struct ipr_embed_ctx **out)
{
    const struct glove *g = enc->impl;
    struct ipr_embed_ctx *c = calloc(1, sizeof *c);
    if (!c) return ipr_error_set(IPR_ERR_NOMEM, "embed: out of memory");
    c->enc = enc;
    c->d4 = (g->h->word_dim + 3) / 4;
    c->acc = aligned_alloc(64, (2 * c->d4 * sizeof *c->acc + 63) & ~(size_t)63);
    int rc = c->acc ? ipr_text_new(&c->text) : ipr_error_set(IPR_ERR_NOMEM, "embed: out of memory");
    if (!rc && g->h->n_hash <= 32768) {
        c->gc = malloc(GC_SIZE * sizeof *c->gc);
        if (!c->gc) rc = ipr_error_set(IPR_ERR_NOMEM, "embed: out of memory");
        for (size_t i = 0; c->gc && i < GC_SIZE; i++) c->gc[i].id = -1;
    }
    if (rc) { ipr_text_free(c->text); free(c->acc); free(c); return rc; }
    *out = c;
    return IPR_OK;
}

static void glove_ctx_free(struct ipr_embed_ctx *c)
{
    if (!c) return;
    ipr_text_free(c->text);
    free(c->acc);
    free(c->gc);
    free(c);
}

static int32_t vocab_cb(const void *ud, const char *w, size_t n)
{
    return glove_lookup(ud, w, n);
}

static void l2norm(float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    if (s <= 0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

/* y += a x over n floats; x may be unaligned, y is the aligned scratch. */
static inline void axpy(v4f *restrict y, float a, const float *restrict x, size_t n)
{
    const v4f av = { a, a, a, a };
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f xv;
        memcpy(&xv, x + i, sizeof xv);
        y[i / 4] += av * xv;
    }
    for (; i < n; i++) y[i / 4][i % 4] += a * x[i];
}

#define MAX_GRAM_TOKEN 48

/* Hash of an n-gram: up to 8 bytes are packed little-endian with the length
 * in the top byte and mixed with the seed by the murmur3 64-bit finaliser
 * (a library call per 3-byte n-gram would cost more than the hash); longer
 * n-grams use XXH3. Part of the file format: changing it needs a version. */
static inline uint64_t gram_hash(const unsigned char *p, size_t g, uint64_t seed)
{
    if (g > 7) return XXH3_64bits_withSeed(p, g, seed);
    /* p has 8 readable bytes: load them and keep g (same as assembling
     * p[0..g) little-endian byte by byte) */
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    x &= ((uint64_t)1 << (8 * g)) - 1;
    x |= (uint64_t)g << 56;
    x ^= seed;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#define MAX_GRAMS (16 * (MAX_GRAM_TOKEN + 2))

/* x negated when sign is 1: flips the sign bit, which is exactly IEEE
 * negation, without a branch (the signs are random, so a branch would be
 * mispredicted half the time). */
static inline float flip(float x, uint32_t sign)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u ^= sign << 31;
    memcpy(&x, &u, 4);
    return x;
}

/* The n-grams of token w as codes: slot | sign << 31, in summation order. */
static size_t gram_codes(const struct glove_hdr *h, const char *w, size_t n, uint32_t *codes)
{
    unsigned char buf[MAX_GRAM_TOKEN + 2 + 8];
    if (n > MAX_GRAM_TOKEN) n = MAX_GRAM_TOKEN;
    buf[0] = '<';
    memcpy(buf + 1, w, n);
    buf[n + 1] = '>';
    memset(buf + n + 2, 0, 8); /* gram_hash reads 8 bytes */
    size_t L = n + 2, count = 0;
    for (size_t g = h->ngram_min; g <= h->ngram_max; g++) {
        for (size_t i = 0; i + g <= L; i++) {
            uint64_t hv = gram_hash(buf + i, g, h->hash_seed);
            uint32_t slot = (uint32_t)(((hv & 0xffffffffu) * h->n_hash) >> 32); /* range reduction, no division */
            codes[count++] = slot | (uint32_t)(hv >> 63) << 31;
        }
    }
    return count;
}

static inline void add_grams(float *out, const uint32_t *codes, size_t count, float weight)
{
    float each = weight / (float)count;
    for (size_t i = 0; i < count; i++)
        out[codes[i] & 0x7fffffffu] += flip(each, codes[i] >> 31);
}

static void ngrams(const struct glove_hdr *h, struct gram_entry *gc, float *out, int32_t id,
                   const char *w, size_t n, float weight)
{
    uint32_t codes[MAX_GRAMS];
    struct gram_entry *e = gc && id >= 0 ? &gc[(uint32_t)id & (GC_SIZE - 1)] : NULL;
    if (e && e->id == id) {
        float each = weight / (float)e->n;
        for (size_t i = 0; i < e->n; i++) out[e->code[i] & 0x7fffu] += flip(each, (uint32_t)(e->code[i] >> 15));
        return;
    }
    size_t count = gram_codes(h, w, n, codes);
    if (!count) return;
    if (e && count <= GC_MAX) {
        e->id = id;
        e->n = (uint16_t)count;
        for (size_t i = 0; i < count; i++) e->code[i] = (uint16_t)((codes[i] & 0x7fffu) | (codes[i] >> 31) << 15);
    }
    add_grams(out, codes, count, weight);
}

static float squash(double x, double scale) { return (float)(log1p(x) / scale); }

/* Counts over the raw bytes: markers of code, math, options and questions. */
static void stats(const char *raw, size_t len, const char *norm, size_t nlen,
                  const struct ipr_tok *tok, size_t nt, size_t tail_start, size_t oov,
                  size_t repaired, float *s, size_t n_stats)
{
    (void)norm;
    (void)nlen;
    /* a byte histogram for the plain counts, then pattern searches for the
     * few markers that need context */
    size_t hist[256] = {0};
    for (size_t i = 0; i < len; i++) hist[(unsigned char)raw[i]]++;
    size_t upper = 0, lower = 0, digits = 0, nonspace = len, ctrl = 0;
    for (int c = 'A'; c <= 'Z'; c++) upper += hist[c];
    for (int c = 'a'; c <= 'z'; c++) lower += hist[c];
    for (int c = '0'; c <= '9'; c++) digits += hist[c];
    for (int c = 0; c <= ' '; c++) nonspace -= hist[c];
    for (int c = 0; c < 0x20; c++)
        if (c != '\t' && c != '\r' && c != '\n') ctrl += hist[c];
    size_t letters = upper + lower, newlines = hist['\n'], quest = hist['?'];
    size_t code = hist['{'] + hist['}'] + hist[';'];
    size_t math = hist['$'] + hist['^'] + hist['='] + hist['\\'];
    const char *p, *end = raw + len;
    /* one scan for the markers that need context: "```" (non-overlapping),
     * "()", "#include", "\\frac", and "def " / "return " / "import "
     * starting the text or following a space or newline */
    for (size_t i = 0; i < len; i++) {
        size_t kw_at = len;
        switch (raw[i]) {
        case '`':
            if (i + 2 < len && raw[i + 1] == '`' && raw[i + 2] == '`') { code += 3; i += 2; }
            continue;
        case '(': if (i + 1 < len && raw[i + 1] == ')') code++; continue;
        case '#': if (i + 8 < len && memcmp(raw + i, "#include", 8) == 0) code += 2; continue;
        case '\\': if (i + 5 < len && memcmp(raw + i, "\\frac", 5) == 0) math += 2; continue;
        case ' ': case '\n': kw_at = i + 1; break;
        default: if (i == 0) kw_at = 0; break;
        }
        if (kw_at < len) {
            const char *q = raw + kw_at;
            size_t left = len - kw_at;
            if ((left >= 4 && memcmp(q, "def ", 4) == 0) ||
                (left >= 7 && (memcmp(q, "return ", 7) == 0 || memcmp(q, "import ", 7) == 0)))
                code += 2;
        }
    }
    if (hist['+'] + hist['*'] + hist['/'] + hist['<'] + hist['>'])
        for (size_t i = 1; i + 1 < len; i++) {
            char c = raw[i];
            if ((c == '+' || c == '*' || c == '/' || c == '<' || c == '>') &&
                raw[i - 1] >= '0' && raw[i - 1] <= '9' && raw[i + 1] >= '0' && raw[i + 1] <= '9')
                math++;
        }
    /* option lines: "A) ...", "b. ...", "(C) ..." at a line start */
    size_t options = 0;
    for (p = raw; p && p < end;) {
        size_t j = (size_t)(p - raw);
        while (j < len && (raw[j] == ' ' || raw[j] == '\t')) j++;
        if (j < len && raw[j] == '(' && j + 1 < len) j++;
        if (j + 1 < len && ((raw[j] >= 'A' && raw[j] <= 'E') || (raw[j] >= 'a' && raw[j] <= 'e')) &&
            (raw[j + 1] == ')' || raw[j + 1] == '.' || raw[j + 1] == ':') &&
            (j + 2 == len || raw[j + 2] == ' ' || raw[j + 2] == '\n'))
            options++;
        p = memchr(p, '\n', (size_t)(end - p));
        if (p) p++;
    }
    size_t words = 0, nonlatin = 0, cjk = 0, punct = 0, wlen = 0;
    int tail_q = 0;
    for (size_t k = 0; k < nt; k++) {
        uint32_t f = tok[k].flags;
        if (f & (IPR_TOK_WORD | IPR_TOK_NUM)) {
            words++;
            wlen += tok[k].len;
            if (f & IPR_TOK_NONLATIN) nonlatin++;
        }
        if (f & IPR_TOK_CJK) cjk++;
        if (f & IPR_TOK_PUNCT) {
            punct++;
            if (k >= tail_start && tok[k].len == 1 && norm[tok[k].off] == '?') tail_q = 1;
        }
    }
    float v[GLOVE_N_STATS];
    v[0] = squash((double)len, 12.0);
    v[1] = squash((double)nt, 10.0);
    v[2] = nonspace ? (float)digits / (float)nonspace : 0.0f;
    v[3] = letters ? (float)upper / (float)letters : 0.0f;
    v[4] = squash((double)code, 5.0);
    v[5] = squash((double)math, 5.0);
    v[6] = words ? (float)nonlatin / (float)words : 0.0f;
    v[7] = nt ? (float)cjk / (float)nt : 0.0f;
    v[8] = squash((double)quest, 3.0);
    v[9] = squash((double)options, 3.0);
    v[10] = squash((double)newlines, 6.0);
    v[11] = (words + cjk) ? (float)oov / (float)(words + cjk) : 0.0f;
    v[12] = nt ? (float)punct / (float)nt : 0.0f;
    v[13] = words ? (float)wlen / (float)words / 10.0f : 0.0f;
    v[14] = (float)tail_q;
    v[15] = len ? (float)(repaired + ctrl) / (float)len : 0.0f;
    for (size_t i = 0; i < n_stats; i++) s[i] = i < GLOVE_N_STATS ? v[i] : 0.0f;
}

static int glove_embed(const struct ipr_encoder *enc, struct ipr_embed_ctx *ctx,
                       const char *text, size_t len, float *out)
{
    const struct glove *g = enc->impl;
    const struct glove_hdr *h = g->h;
    const size_t D = h->word_dim;
    if (!ctx || ctx->enc != enc)
        return ipr_error_set(IPR_ERR_INVAL, "embed: context made for another encoder");
    memset(out, 0, enc->dim * sizeof *out);
    if (!text) len = 0;
    const char *norm;
    size_t nlen, nt;
    const struct ipr_tok *tok;
    int rc = ipr_text_tokenize(ctx->text, text ? text : "", len, vocab_cb, g, &norm, &nlen, &tok, &nt);
    if (rc) return rc;
    float *whole = out, *tail = out + D, *hash = out + 2 * D, *st = out + 2 * D + h->n_hash;
    v4f *acc_whole = ctx->acc, *acc_tail = ctx->acc + ctx->d4;
    memset(ctx->acc, 0, 2 * ctx->d4 * sizeof *ctx->acc);
    size_t tail_start = nt > h->tail_tokens ? nt - h->tail_tokens : 0;
    const float a = h->sif_a, zh = g->zipf_h;
    size_t oov = 0;
    for (size_t k = 0; k < nt; k++) {
        int32_t id = tok[k].id;
        /* the vectors are scattered over 137 MB: ask for a later token's
         * vector now so its cache misses overlap this token's work */
        if (k + 4 < nt && tok[k + 4].id >= 0) {
            const char *pv = (const char *)(g->vectors + (size_t)tok[k + 4].id * D);
            for (size_t o = 0; o < D * sizeof(float); o += 64) __builtin_prefetch(pv + o);
        }
        float w = 1.0f;
        if (id >= 0) {
            float p = 1.0f / ((float)(id + 1) * zh);
            w = a / (a + p);
            const float *v = g->vectors + (size_t)id * D;
            axpy(acc_whole, w, v, D);
            if (k >= tail_start) axpy(acc_tail, w, v, D);
        } else if (!(tok[k].flags & IPR_TOK_PUNCT)) {
            oov++;
        }
        if (tok[k].flags & (IPR_TOK_WORD | IPR_TOK_NUM | IPR_TOK_CJK))
            ngrams(h, ctx->gc, hash, id, norm + tok[k].off, tok[k].len, w);
    }
    memcpy(whole, acc_whole, D * sizeof *whole);
    memcpy(tail, acc_tail, D * sizeof *tail);
    l2norm(whole, D);
    l2norm(tail, D);
    l2norm(hash, h->n_hash);
    stats(text ? text : "", len, norm, nlen, tok, nt, tail_start, oov, ipr_text_repaired(ctx->text), st, h->n_stats);
    return IPR_OK;
}

static void glove_close(struct ipr_encoder *enc)
{
    glove_close_file(enc->impl);
    free(enc);
}

const struct ipr_encoder_ops glove_ops = {
    .kind = "glove-hash",
    .ctx_new = glove_ctx_new,
    .ctx_free = glove_ctx_free,
    .embed = glove_embed,
    .close = glove_close,
};
