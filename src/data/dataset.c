/*
 * dataset.c — the in-memory canonical dataset (data.h): building it row by
 * row, the id index that rejects duplicates, subsets, the content checksum,
 * the hash split and the approximate tokenizer. JSON Lines I/O is in jsonl.c.
 *
 * Storage: scores and costs are dense (n, n_models) row-major arrays with NaN
 * for "absent"; adding a model after rows exist re-strides both arrays (cheap
 * in practice: readers meet every model on the first lines).
 */
#include "ipr/data.h"
#include "ipr/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAX_MODELS 4096

/* Open-addressing hash of id -> row + 1 (0 = empty slot). `count` is the
 * number of rows indexed; when it differs from ds->n (rows added by hand),
 * the index is rebuilt. */
struct id_index {
    size_t cap;      /* power of two */
    size_t count;
    size_t *slots;
};

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static uint64_t hash_id(const char *id)
{
    return XXH3_64bits(id, strlen(id));
}

static void index_free(struct ipr_dataset *ds)
{
    struct id_index *ix = ds->id_index;
    if (ix) { free(ix->slots); free(ix); }
    ds->id_index = NULL;
}

/* Looks id up; returns its row or -1, and in *slot the slot where it is or
 * would be inserted. */
static long index_find(const struct ipr_dataset *ds, const struct id_index *ix, const char *id, size_t *slot)
{
    size_t mask = ix->cap - 1, i = (size_t)hash_id(id) & mask;
    while (ix->slots[i]) {
        size_t row = ix->slots[i] - 1;
        if (strcmp(ds->prompts[row].id, id) == 0) { *slot = i; return (long)row; }
        i = (i + 1) & mask;
    }
    *slot = i;
    return -1;
}

/* Makes sure the index covers every row and has room for one more. */
static int index_ready(struct ipr_dataset *ds)
{
    struct id_index *ix = ds->id_index;
    if (ix && ix->count == ds->n && (ds->n + 1) * 2 <= ix->cap) return IPR_OK;
    size_t cap = 64;
    while (cap < (ds->n + 1) * 2) cap *= 2;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return ipr_error_set(IPR_ERR_NOMEM, "out of memory (dataset index)");
    if (!ix) {
        ix = calloc(1, sizeof *ix);
        if (!ix) { free(slots); return ipr_error_set(IPR_ERR_NOMEM, "out of memory (dataset index)"); }
        ds->id_index = ix;
    }
    free(ix->slots);
    ix->slots = slots; ix->cap = cap; ix->count = 0;
    for (size_t r = 0; r < ds->n; r++) {
        size_t s;
        if (index_find(ds, ix, ds->prompts[r].id, &s) < 0) ix->slots[s] = r + 1;
        ix->count++;
    }
    return IPR_OK;
}

struct ipr_dataset *ipr_dataset_new(void)
{
    return calloc(1, sizeof(struct ipr_dataset));
}

void ipr_dataset_free(struct ipr_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) {
        free(ds->prompts[i].id);
        free(ds->prompts[i].text);
        free(ds->prompts[i].task);
    }
    for (size_t m = 0; m < ds->n_models; m++) free(ds->models[m]);
    free(ds->models);
    free(ds->prompts);
    free(ds->scores);
    free(ds->costs);
    index_free(ds);
    free(ds);
}

int ipr_dataset_model_index(const struct ipr_dataset *ds, const char *name)
{
    if (!ds || !name) return -1;
    for (size_t m = 0; m < ds->n_models; m++)
        if (strcmp(ds->models[m], name) == 0) return (int)m;
    return -1;
}

/* Re-strides a (rows, old_w) matrix into a fresh (cap, new_w) one, NaN-filled. */
static double *restride(const double *a, size_t rows, size_t cap, size_t old_w, size_t new_w)
{
    size_t cells = cap * new_w;
    double *b = malloc((cells ? cells : 1) * sizeof *b);
    if (!b) return NULL;
    for (size_t i = 0; i < cells; i++) b[i] = NAN;
    for (size_t r = 0; r < rows && a; r++)
        memcpy(b + r * new_w, a + r * old_w, old_w * sizeof *b);
    return b;
}

int ipr_dataset_add_model(struct ipr_dataset *ds, const char *name)
{
    if (!ds || !name || !*name) return ipr_error_set(IPR_ERR_INVAL, "model name is empty");
    int m = ipr_dataset_model_index(ds, name);
    if (m >= 0) return m;
    if (ds->n_models >= MAX_MODELS)
        return ipr_error_set(IPR_ERR_LIMIT, "more than %d models", MAX_MODELS);
    char *copy = dup_str(name);
    char **models = realloc(ds->models, (ds->n_models + 1) * sizeof *models);
    if (!copy || !models) {
        free(copy);
        if (models) ds->models = models;
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    ds->models = models;
    if (ds->cap > 0) {
        double *s = restride(ds->scores, ds->n, ds->cap, ds->n_models, ds->n_models + 1);
        double *c = restride(ds->costs, ds->n, ds->cap, ds->n_models, ds->n_models + 1);
        if (!s || !c) { free(s); free(c); free(copy); return ipr_error_set(IPR_ERR_NOMEM, "out of memory"); }
        free(ds->scores); free(ds->costs);
        ds->scores = s; ds->costs = c;
    }
    ds->models[ds->n_models] = copy;
    return (int)ds->n_models++;
}

static int grow_rows(struct ipr_dataset *ds)
{
    if (ds->n < ds->cap) return IPR_OK;
    size_t cap = ds->cap ? ds->cap * 2 : 256;
    struct ipr_prompt *p = realloc(ds->prompts, cap * sizeof *p);
    if (!p) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    ds->prompts = p;
    double *s = restride(ds->scores, ds->n, cap, ds->n_models, ds->n_models);
    double *c = restride(ds->costs, ds->n, cap, ds->n_models, ds->n_models);
    if (!s || !c) { free(s); free(c); return ipr_error_set(IPR_ERR_NOMEM, "out of memory"); }
    free(ds->scores); free(ds->costs);
    ds->scores = s; ds->costs = c;
    ds->cap = cap;
    return IPR_OK;
}

long ipr_dataset_add(struct ipr_dataset *ds, const char *id, const char *text, const char *task)
{
    if (!ds || !id || !*id) return ipr_error_set(IPR_ERR_INVAL, "prompt id is empty");
    if (!text) return ipr_error_set(IPR_ERR_INVAL, "prompt %s has no text", id);
    int rc = index_ready(ds);
    if (rc) return rc;
    struct id_index *ix = ds->id_index;
    size_t slot;
    if (index_find(ds, ix, id, &slot) >= 0)
        return ipr_error_set(IPR_ERR_INVAL, "duplicate id \"%s\"", id);
    if ((rc = grow_rows(ds))) return rc;
    struct ipr_prompt *p = &ds->prompts[ds->n];
    p->id = dup_str(id);
    p->text = dup_str(text);
    p->task = dup_str(task);
    if (!p->id || !p->text || (task && !p->task)) {
        free(p->id); free(p->text); free(p->task);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    for (size_t m = 0; m < ds->n_models; m++) {
        ds->scores[ds->n * ds->n_models + m] = NAN;
        ds->costs[ds->n * ds->n_models + m] = NAN;
    }
    ix->slots[slot] = ds->n + 1;
    ix->count++;
    return (long)ds->n++;
}

int ipr_dataset_subset(const struct ipr_dataset *ds, const uint8_t *keep, struct ipr_dataset **out)
{
    *out = NULL;
    struct ipr_dataset *d = ipr_dataset_new();
    if (!d) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    int rc = IPR_OK;
    for (size_t m = 0; m < ds->n_models && rc >= 0; m++) rc = ipr_dataset_add_model(d, ds->models[m]);
    for (size_t i = 0; i < ds->n && rc >= 0; i++) {
        if (!keep[i]) continue;
        long r = ipr_dataset_add(d, ds->prompts[i].id, ds->prompts[i].text, ds->prompts[i].task);
        if (r < 0) { rc = (int)r; break; }
        memcpy(d->scores + (size_t)r * d->n_models, ds->scores + i * ds->n_models, ds->n_models * sizeof(double));
        memcpy(d->costs + (size_t)r * d->n_models, ds->costs + i * ds->n_models, ds->n_models * sizeof(double));
    }
    if (rc < 0) { ipr_dataset_free(d); return rc; }
    *out = d;
    return IPR_OK;
}

/* The checksum covers, in order: the model names, then per prompt its id,
 * text and task (each NUL-terminated; task absent = a lone 0xff byte) and the
 * scores and costs as IEEE-754 bits, every NaN folded to one pattern. It does
 * not depend on the file's formatting or key order. */
static void hash_double(XXH3_state_t *st, double v)
{
    uint64_t bits;
    if (isnan(v)) bits = 0x7ff8000000000000ull;
    else { if (v == 0) v = 0; memcpy(&bits, &v, sizeof bits); }
    unsigned char b[8];
    for (int k = 0; k < 8; k++) b[k] = (unsigned char)(bits >> (8 * k));
    XXH3_64bits_update(st, b, 8);
}

uint64_t ipr_dataset_checksum(const struct ipr_dataset *ds)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st) return 0;
    XXH3_64bits_reset(st);
    static const unsigned char none = 0xff;
    for (size_t m = 0; m < ds->n_models; m++)
        XXH3_64bits_update(st, ds->models[m], strlen(ds->models[m]) + 1);
    XXH3_64bits_update(st, "\n", 1);
    for (size_t i = 0; i < ds->n; i++) {
        const struct ipr_prompt *p = &ds->prompts[i];
        XXH3_64bits_update(st, p->id, strlen(p->id) + 1);
        XXH3_64bits_update(st, p->text, strlen(p->text) + 1);
        if (p->task) XXH3_64bits_update(st, p->task, strlen(p->task) + 1);
        else XXH3_64bits_update(st, &none, 1);
        for (size_t m = 0; m < ds->n_models; m++) {
            hash_double(st, ds->scores[i * ds->n_models + m]);
            hash_double(st, ds->costs[i * ds->n_models + m]);
        }
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

/* u = the top 53 bits of XXH3-64(id, seed 0) as a fraction in [0,1): test if
 * u < test_frac, validation if u < test_frac + val_frac, else train. The same
 * id always lands in the same split, whatever the file order. */
int ipr_split_of(const char *id, double val_frac, double test_frac)
{
    if (!id) return 0;
    double u = (double)(hash_id(id) >> 11) * (1.0 / 9007199254740992.0);
    if (!(test_frac > 0)) test_frac = 0;
    if (!(val_frac > 0)) val_frac = 0;
    if (u < test_frac) return 2;
    if (u < test_frac + val_frac) return 1;
    return 0;
}

/* Approximate token count (docs/data.md, "Token counting"): a quarter token
 * per ASCII byte (BPE tokenizers average ~4 characters of English per token),
 * one token per CJK / kana / hangul character, half a token per other
 * non-ASCII character, rounded up. Bytes that are not valid UTF-8 count as
 * ASCII. Pure, no allocation: safe on the routing hot path. */
size_t ipr_count_tokens(const char *text, size_t len)
{
    if (!text) return 0;
    const unsigned char *s = (const unsigned char *)text;
    size_t quarters = 0, i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { quarters += 1; i++; continue; }
        unsigned cp; size_t k;
        if ((c & 0xe0) == 0xc0) { cp = c & 0x1f; k = 1; }
        else if ((c & 0xf0) == 0xe0) { cp = c & 0x0f; k = 2; }
        else if ((c & 0xf8) == 0xf0) { cp = c & 0x07; k = 3; }
        else { quarters += 1; i++; continue; }
        if (i + k >= len) { quarters += 1; i++; continue; } /* truncated */
        size_t j;
        for (j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) break;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (j <= k) { quarters += 1; i++; continue; }
        int wide = (cp >= 0x2e80 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7af) ||
                   (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xff00 && cp <= 0xffef) ||
                   (cp >= 0x20000 && cp <= 0x3ffff);
        quarters += wide ? 4 : 2;
        i += k + 1;
    }
    return (quarters + 3) / 4;
}
