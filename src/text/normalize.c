/*
 * normalize.c — UTF-8 repair, NFKC + case folding, and the GloVe-style
 * tokenizer (contracts in include/ipr/text.h).
 *
 * The text is processed one whitespace-delimited chunk at a time: a chunk of
 * pure ASCII is lowercased byte by byte (NFKC and case folding reduce to that
 * on ASCII); a chunk holding any byte >= 0x80 is first repaired (every byte
 * that does not start a valid UTF-8 sequence becomes U+FFFD) and then run
 * through utf8proc's decompose/reencode into the scratch buffers, which is
 * what utf8proc_map does minus its allocation. Splitting at ASCII whitespace
 * is safe because no multi-byte sequence contains an ASCII byte, and NFKC
 * never composes across whitespace.
 */
#include "ipr/text.h"
#include "ipr/err.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

struct ipr_text {
    char *buf;   size_t cap, len;      /* normalised text */
    char *fix;   size_t fixcap;        /* one repaired chunk */
    int32_t *u32; size_t u32cap;       /* utf8proc scratch (codepoints, then bytes) */
    struct ipr_tok *toks; size_t tokcap, ntok;
    size_t repaired;
};

#define NORM_OPTS (UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | \
                   UTF8PROC_STABLE | UTF8PROC_IGNORE)

int ipr_text_new(struct ipr_text **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return ipr_error_set(IPR_ERR_NOMEM, "text: out of memory");
    return IPR_OK;
}

void ipr_text_free(struct ipr_text *t)
{
    if (!t) return;
    free(t->buf);
    free(t->fix);
    free(t->u32);
    free(t->toks);
    free(t);
}

size_t ipr_text_repaired(const struct ipr_text *t) { return t ? t->repaired : 0; }

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return ipr_error_set(IPR_ERR_NOMEM, "text: out of memory (%zu bytes)", c * elem);
    *p = q;
    *cap = c;
    return 0;
}

static int put(struct ipr_text *t, const void *src, size_t n)
{
    if (t->len + n + 1 > t->cap && grow((void **)&t->buf, &t->cap, t->len + n + 1, 1)) return IPR_ERR_NOMEM;
    memcpy(t->buf + t->len, src, n);
    t->len += n;
    return 0;
}

/* Typographic quotes to ASCII, applied before decomposition. */
static utf8proc_int32_t map_quotes(utf8proc_int32_t c, void *ud)
{
    (void)ud;
    switch (c) {
    case 0x2018: case 0x2019: case 0x201B: case 0x2032: case 0x00B4: case 0x02BC: return '\'';
    case 0x201C: case 0x201D: case 0x201F: case 0x2033: case 0x00AB: case 0x00BB: return '"';
    default: return c;
    }
}

static int norm_chunk(struct ipr_text *t, const char *s, size_t n)
{
    /* 1. repair: at most 3 output bytes per input byte */
    if (grow((void **)&t->fix, &t->fixcap, 3 * n + 1, 1)) return IPR_ERR_NOMEM;
    size_t m = 0;
    for (size_t k = 0; k < n;) {
        unsigned char c = (unsigned char)s[k];
        if (c < 0x80) { t->fix[m++] = (char)c; k++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + k, (utf8proc_ssize_t)(n - k), &cp);
        if (r <= 0) {
            memcpy(t->fix + m, "\xEF\xBF\xBD", 3);
            m += 3; k++;
            t->repaired++;
        } else {
            memcpy(t->fix + m, s + k, (size_t)r);
            m += (size_t)r; k += (size_t)r;
        }
    }
    /* 2. NFKC + casefold into the codepoint scratch, growing as told */
    for (;;) {
        utf8proc_ssize_t r = utf8proc_decompose_custom((const utf8proc_uint8_t *)t->fix, (utf8proc_ssize_t)m,
                                                       t->u32, (utf8proc_ssize_t)t->u32cap, NORM_OPTS,
                                                       map_quotes, NULL);
        if (r < 0) return put(t, t->fix, m); /* cannot happen on repaired input; keep the bytes */
        if ((size_t)r > t->u32cap) {
            if (grow((void **)&t->u32, &t->u32cap, (size_t)r, sizeof *t->u32)) return IPR_ERR_NOMEM;
            continue;
        }
        utf8proc_ssize_t b = utf8proc_reencode(t->u32, r, NORM_OPTS);
        if (b < 0) return put(t, t->fix, m);
        return put(t, t->u32, (size_t)b);
    }
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int ipr_text_normalize(struct ipr_text *t, const char *s, size_t len,
                       const char **out, size_t *out_len)
{
    if (len > IPR_TEXT_MAX_BYTES)
        return ipr_error_set(IPR_ERR_LIMIT, "text: prompt of %zu bytes exceeds the limit of %zu",
                             len, (size_t)IPR_TEXT_MAX_BYTES);
    t->len = 0;
    t->repaired = 0;
    if (grow((void **)&t->buf, &t->cap, len + 1, 1)) return IPR_ERR_NOMEM;
    /* One pass lowercasing ASCII; on the first byte >= 0x80 of a chunk the
     * chunk (from its start) is redone by norm_chunk. */
    char *o = t->buf;
    size_t w = 0, cs_in = 0, cs_out = 0; /* where the current chunk began, in and out */
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c > ' ' && c < 0x80) {
            o[w++] = (char)(c + 32 * ((unsigned)(c - 'A') < 26u));
            i++;
            continue;
        }
        if (c < 0x80) {
            o[w++] = is_space(c) ? (c == '\n' ? '\n' : ' ') : (char)c;
            i++;
            if (is_space(c)) { cs_in = i; cs_out = w; }
            continue;
        }
        size_t j = i;
        while (j < len && !is_space((unsigned char)s[j])) j++;
        t->len = cs_out;
        if (norm_chunk(t, s + cs_in, j - cs_in)) return IPR_ERR_NOMEM;
        w = t->len;
        if (w + (len - j) + 1 > t->cap && grow((void **)&t->buf, &t->cap, w + (len - j) + 1, 1))
            return IPR_ERR_NOMEM;
        o = t->buf;
        i = cs_in = j;
        cs_out = w;
    }
    t->len = w;
    t->buf[t->len] = '\0';
    *out = t->buf;
    *out_len = t->len;
    return IPR_OK;
}

/* ---- tokenizer ---- */

enum { C_SPACE, C_NL, C_WORD, C_CJK, C_PUNCT };

static int is_cjk(int32_t cp)
{
    return (cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF66 && cp <= 0xFF9F) ||
           (cp >= 0x20000 && cp <= 0x3FFFF);
}

static int ascii_cls(unsigned char c)
{
    if (c == '\n') return C_NL;
    if (c <= ' ' || c == 0x7f) return C_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) return C_WORD;
    return C_PUNCT;
}

static int cls_slow(const char *s, size_t n, size_t i, size_t *w);

/* Class of the codepoint at s[i] (valid UTF-8); *w receives its byte length.
 * ASCII is decided inline; the rest asks utf8proc. */
static inline int cls_at(const char *s, size_t n, size_t i, size_t *w)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *w = 1;
        return ascii_cls(c);
    }
    return cls_slow(s, n, i, w);
}

static int cls_slow(const char *s, size_t n, size_t i, size_t *w)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
    if (r <= 0) { *w = 1; return C_PUNCT; }
    *w = (size_t)r;
    if (is_cjk(cp)) return C_CJK;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return C_WORD;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CS:
        return C_SPACE;
    default:
        return C_PUNCT;
    }
}

struct tokz {
    struct ipr_text *t;
    const char *s;
    size_t n;
    ipr_vocab_fn vocab;
    const void *ud;
    uint32_t pending; /* IPR_TOK_NEWLINE waiting for the next token */
};

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_joiner(char c) { return c == '-' || c == '.' || c == ',' || c == '\'' || c == '_'; }

static int32_t look(struct tokz *z, size_t a, size_t b)
{
    return z->vocab ? z->vocab(z->ud, z->s + a, b - a) : -1;
}

static int emit(struct tokz *z, size_t a, size_t b, uint32_t flags, int32_t id)
{
    struct ipr_text *t = z->t;
    if (t->ntok + 1 > t->tokcap && grow((void **)&t->toks, &t->tokcap, t->ntok + 1, sizeof *t->toks))
        return IPR_ERR_NOMEM;
    if (flags & (IPR_TOK_WORD | IPR_TOK_NUM)) {
        flags &= ~(uint32_t)(IPR_TOK_WORD | IPR_TOK_NUM);
        flags |= is_digit(z->s[a]) ? IPR_TOK_NUM : IPR_TOK_WORD;
        for (size_t k = a; k < b; k++)
            if ((unsigned char)z->s[k] >= 0x80) { flags |= IPR_TOK_NONLATIN; break; }
    }
    struct ipr_tok *k = &t->toks[t->ntok++];
    k->off = (uint32_t)a;
    k->len = (uint32_t)(b - a);
    k->id = id;
    k->flags = flags | z->pending;
    z->pending = 0;
    return 0;
}

/* A run without contractions: whole if known, a number, or joiner-free;
 * else split at the joiners. */
static int emit_piece(struct tokz *z, size_t a, size_t b)
{
    if (a >= b) return 0;
    int joined = 0, numeric = is_digit(z->s[a]);
    for (size_t k = a; k < b; k++) {
        char c = z->s[k];
        if (is_joiner(c)) joined = 1;
        else if (!is_digit(c)) numeric = 0;
    }
    int32_t id = look(z, a, b);
    if (!joined || id >= 0 || numeric) return emit(z, a, b, IPR_TOK_WORD, id);
    size_t p = a;
    for (size_t k = a; k <= b; k++) {
        if (k == b || is_joiner(z->s[k])) {
            if (k > p && emit(z, p, k, IPR_TOK_WORD, look(z, p, k))) return IPR_ERR_NOMEM;
            if (k < b && emit(z, k, k + 1, IPR_TOK_PUNCT, look(z, k, k + 1))) return IPR_ERR_NOMEM;
            p = k + 1;
        }
    }
    return 0;
}

static int suffix_is(const char *s, size_t a, size_t b, const char *suf)
{
    size_t n = strlen(suf);
    return b - a == n && memcmp(s + a, suf, n) == 0;
}

/* A word run [a, b): splits PTB contractions off, then emits the pieces. */
static int emit_run(struct tokz *z, size_t a, size_t b)
{
    const char *s = z->s;
    if (b - a > 3 && memcmp(s + b - 3, "n't", 3) == 0) {
        if (emit_piece(z, a, b - 3)) return IPR_ERR_NOMEM;
        return emit(z, b - 3, b, IPR_TOK_WORD, look(z, b - 3, b));
    }
    size_t p = b;
    while (p > a && s[p - 1] != '\'') p--;
    if (p > a + 1) {
        size_t q = p - 1; /* the apostrophe */
        if (suffix_is(s, q, b, "'s") || suffix_is(s, q, b, "'re") || suffix_is(s, q, b, "'ll") ||
            suffix_is(s, q, b, "'ve") || suffix_is(s, q, b, "'m") || suffix_is(s, q, b, "'d")) {
            if (emit_piece(z, a, q)) return IPR_ERR_NOMEM;
            return emit(z, q, b, IPR_TOK_WORD, look(z, q, b));
        }
    }
    return emit_piece(z, a, b);
}

int ipr_text_tokenize(struct ipr_text *t, const char *s, size_t len,
                      ipr_vocab_fn vocab, const void *ud,
                      const char **text, size_t *text_len,
                      const struct ipr_tok **toks, size_t *n)
{
    const char *x;
    size_t xn;
    int rc = ipr_text_normalize(t, s, len, &x, &xn);
    if (rc) return rc;
    if (xn > UINT32_MAX) return ipr_error_set(IPR_ERR_LIMIT, "text: normalised prompt too long");
    struct tokz z = { t, x, xn, vocab, ud, 0 };
    t->ntok = 0;
    size_t i = 0, w;
    while (i < xn) {
        int c = cls_at(x, xn, i, &w);
        if (c == C_NL) { z.pending = IPR_TOK_NEWLINE; i += w; continue; }
        if (c == C_SPACE) { i += w; continue; }
        if (c == C_CJK) {
            if (emit(&z, i, i + w, IPR_TOK_CJK, look(&z, i, i + w))) return IPR_ERR_NOMEM;
            i += w;
            continue;
        }
        if (c == C_PUNCT) {
            size_t j = i + w;
            if (x[i] == '.' || x[i] == '-')
                while (j < xn && x[j] == x[i]) j++;
            if (emit(&z, i, j, IPR_TOK_PUNCT, look(&z, i, j))) return IPR_ERR_NOMEM;
            i = j;
            continue;
        }
        /* a word run, possibly with inner joiners */
        size_t j = i + w, w2;
        int dotted = 0;
        for (;;) {
            while (j < xn && cls_at(x, xn, j, &w2) == C_WORD) j += w2;
            if (j + 1 < xn && is_joiner(x[j]) && cls_at(x, xn, j + 1, &w2) == C_WORD &&
                (x[j] != ',' || (is_digit(x[j - 1]) && is_digit(x[j + 1])))) {
                dotted |= x[j] == '.';
                j += 1;
                continue;
            }
            break;
        }
        /* "u.s." : an abbreviation keeps its final dot when the vocabulary knows it */
        if (dotted && j < xn && x[j] == '.' && look(&z, i, j + 1) >= 0) {
            if (emit(&z, i, j + 1, IPR_TOK_WORD, look(&z, i, j + 1))) return IPR_ERR_NOMEM;
            i = j + 1;
            continue;
        }
        if (emit_run(&z, i, j)) return IPR_ERR_NOMEM;
        i = j;
    }
    *text = x;
    *text_len = xn;
    *toks = t->toks;
    *n = t->ntok;
    return IPR_OK;
}
