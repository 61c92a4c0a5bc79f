/*
 * view.c — the prompt view: drops boilerplate segments (shared few-shot
 * examples, instructions, system prompts) learned from training prompts, so
 * that the encoder sees what differs between prompts. Contract in
 * include/ipr/text.h.
 *
 * Segments: a prompt is cut after every '\n'; a line longer than
 * VIEW_LONG_LINE bytes is cut further after ". ", "? " and "! ". Each segment
 * keeps its terminator, so apply() only ever removes bytes and its output
 * never exceeds its input. A segment's key is XXH3 over its text with runs of
 * whitespace collapsed to one space, leading and trailing whitespace dropped
 * and ASCII lowercased (chained over 256-byte chunks so no allocation is
 * needed); blank segments have no key.
 *
 * Saved form (little-endian): "IPRVIEW1", u32 version (1), u32 zero,
 * u64 n_keys, u64 XXH3 of the key bytes, then u64 keys[n_keys] strictly
 * increasing.
 */
#include "ipr/text.h"
#include "ipr/err.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define VIEW_LONG_LINE 200
#define VIEW_MIN_DOCS 5
#define VIEW_MIN_FRAC 0.02
#define VIEW_MAGIC "IPRVIEW1"
#define VIEW_VERSION 1u
#define VIEW_HDR 32u

struct ipr_view {
    size_t n;
    uint64_t *keys; /* (n) sorted */
};

/* Next segment of text[i, len): returns its end (exclusive, terminator
 * included). */
static size_t seg_end(const char *t, size_t i, size_t len)
{
    const char *nl = memchr(t + i, '\n', len - i);
    size_t line_end = nl ? (size_t)(nl - t) + 1 : len;
    if (line_end - i <= VIEW_LONG_LINE) return line_end;
    for (size_t k = i + 1; k + 1 < line_end; k++)
        if ((t[k] == '.' || t[k] == '?' || t[k] == '!') && t[k + 1] == ' ') return k + 2;
    return line_end;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Key of t[a, b); 0 for a blank segment (a real key of 0 is remapped to 1). */
static uint64_t seg_key(const char *t, size_t a, size_t b)
{
    char buf[256];
    size_t n = 0;
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    int any = 0, space = 0;
    for (size_t i = a; i < b; i++) {
        char c = t[i];
        if (is_ws(c)) { space = any; continue; }
        if (space) {
            buf[n++] = ' ';
            space = 0;
            if (n == sizeof buf) { h = XXH3_64bits_withSeed(buf, n, h); n = 0; }
        }
        buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        any = 1;
        if (n == sizeof buf) { h = XXH3_64bits_withSeed(buf, n, h); n = 0; }
    }
    if (!any) return 0;
    h = XXH3_64bits_withSeed(buf, n, h);
    return h ? h : 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int ipr_view_learn(const char *const *texts, const size_t *lens, size_t n, struct ipr_view **out)
{
    *out = NULL;
    size_t cap = 1024, m = 0, dcap = 64;
    uint64_t *all = malloc(cap * sizeof *all), *doc = malloc(dcap * sizeof *doc);
    struct ipr_view *v = calloc(1, sizeof *v);
    if (!all || !doc || !v) goto nomem;
    for (size_t d = 0; d < n; d++) {
        const char *t = texts[d];
        size_t len = t ? (lens ? lens[d] : strlen(t)) : 0, dn = 0;
        for (size_t i = 0; i < len;) {
            size_t e = seg_end(t, i, len);
            uint64_t k = seg_key(t, i, e);
            i = e;
            if (!k) continue;
            if (dn == dcap) {
                uint64_t *q = realloc(doc, 2 * dcap * sizeof *q);
                if (!q) goto nomem;
                doc = q;
                dcap *= 2;
            }
            doc[dn++] = k;
        }
        qsort(doc, dn, sizeof *doc, cmp_u64);
        for (size_t i = 0; i < dn; i++) {
            if (i && doc[i] == doc[i - 1]) continue; /* document frequency: once per prompt */
            if (m == cap) {
                uint64_t *q = realloc(all, 2 * cap * sizeof *q);
                if (!q) goto nomem;
                all = q;
                cap *= 2;
            }
            all[m++] = doc[i];
        }
    }
    qsort(all, m, sizeof *all, cmp_u64);
    size_t min_df = (size_t)(VIEW_MIN_FRAC * (double)n + 0.999999);
    if (min_df < VIEW_MIN_DOCS) min_df = VIEW_MIN_DOCS;
    size_t k = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && all[j] == all[i]) j++;
        if (j - i >= min_df) all[k++] = all[i];
        i = j;
    }
    v->n = k;
    v->keys = k ? realloc(all, k * sizeof *all) : NULL;
    if (k && !v->keys) goto nomem;
    if (!k) free(all);
    free(doc);
    *out = v;
    return IPR_OK;
nomem:
    free(all);
    free(doc);
    free(v);
    return ipr_error_set(IPR_ERR_NOMEM, "view: out of memory");
}

static int has_key(const struct ipr_view *v, uint64_t k)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->keys[mid] < k) lo = mid + 1;
        else if (v->keys[mid] > k) hi = mid;
        else return 1;
    }
    return 0;
}

size_t ipr_view_apply(const struct ipr_view *v, const char *text, size_t len, char *out, size_t cap)
{
    if (!text || !out || cap < len) return 0;
    if (!v || v->n == 0) {
        memcpy(out, text, len);
        return len;
    }
    size_t w = 0, last_a = 0, last_b = 0;
    int have_last = 0;
    for (size_t i = 0; i < len;) {
        size_t e = seg_end(text, i, len);
        uint64_t k = seg_key(text, i, e);
        if (k) { last_a = i; last_b = e; have_last = 1; }
        if (k && !has_key(v, k)) {
            memcpy(out + w, text + i, e - i);
            w += e - i;
        }
        i = e;
    }
    if (w == 0 && len > 0) {
        if (have_last) {
            memcpy(out, text + last_a, last_b - last_a);
            w = last_b - last_a;
        } else {
            memcpy(out, text, len);
            w = len;
        }
    }
    return w;
}

size_t ipr_view_size(const struct ipr_view *v) { return v ? v->n : 0; }

static void put_u32(uint8_t *p, uint32_t x) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(x >> (8 * i)); }
static void put_u64(uint8_t *p, uint64_t x) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(x >> (8 * i)); }
static uint32_t get_u32(const uint8_t *p) { uint32_t x = 0; for (int i = 3; i >= 0; i--) x = x << 8 | p[i]; return x; }
static uint64_t get_u64(const uint8_t *p) { uint64_t x = 0; for (int i = 7; i >= 0; i--) x = x << 8 | p[i]; return x; }

int ipr_view_save(const struct ipr_view *v, uint8_t **buf, size_t *len)
{
    size_t n = v ? v->n : 0, sz = VIEW_HDR + 8 * n;
    uint8_t *b = malloc(sz);
    if (!b) return ipr_error_set(IPR_ERR_NOMEM, "view: out of memory");
    memcpy(b, VIEW_MAGIC, 8);
    put_u32(b + 8, VIEW_VERSION);
    put_u32(b + 12, 0);
    put_u64(b + 16, n);
    for (size_t i = 0; i < n; i++) put_u64(b + VIEW_HDR + 8 * i, v->keys[i]);
    put_u64(b + 24, XXH3_64bits(b + VIEW_HDR, 8 * n));
    *buf = b;
    *len = sz;
    return IPR_OK;
}

int ipr_view_load(const uint8_t *buf, size_t len, struct ipr_view **out)
{
    *out = NULL;
    if (!buf || len < VIEW_HDR) return ipr_error_set(IPR_ERR_FORMAT, "view: truncated (%zu bytes)", len);
    if (memcmp(buf, VIEW_MAGIC, 8) != 0) return ipr_error_set(IPR_ERR_FORMAT, "view: bad magic");
    if (get_u32(buf + 8) != VIEW_VERSION)
        return ipr_error_set(IPR_ERR_VERSION, "view: version %u, expected %u", get_u32(buf + 8), VIEW_VERSION);
    uint64_t n = get_u64(buf + 16);
    if (n > (len - VIEW_HDR) / 8 || VIEW_HDR + 8 * n != len)
        return ipr_error_set(IPR_ERR_FORMAT, "view: %llu keys do not fit %zu bytes", (unsigned long long)n, len);
    if (XXH3_64bits(buf + VIEW_HDR, 8 * (size_t)n) != get_u64(buf + 24))
        return ipr_error_set(IPR_ERR_CHECKSUM, "view: checksum mismatch");
    struct ipr_view *v = calloc(1, sizeof *v);
    if (!v) return ipr_error_set(IPR_ERR_NOMEM, "view: out of memory");
    v->n = (size_t)n;
    v->keys = n ? malloc((size_t)n * 8) : NULL;
    if (n && !v->keys) { free(v); return ipr_error_set(IPR_ERR_NOMEM, "view: out of memory"); }
    for (size_t i = 0; i < v->n; i++) {
        v->keys[i] = get_u64(buf + VIEW_HDR + 8 * i);
        if (v->keys[i] == 0 || (i && v->keys[i] <= v->keys[i - 1])) {
            ipr_view_free(v);
            return ipr_error_set(IPR_ERR_FORMAT, "view: keys not strictly increasing at %zu", i);
        }
    }
    *out = v;
    return IPR_OK;
}

void ipr_view_free(struct ipr_view *v)
{
    if (!v) return;
    free(v->keys);
    free(v);
}
