/*
 * qe_io.c — the estimator's binary form. Little-endian throughout; floats are
 * IEEE-754 bit patterns. Adapters are separate parts appended in model order,
 * and a 32-byte END part closes the blob with the adapter count (so a blob
 * cut at a part boundary is still detected). Adding a model therefore keeps
 * every byte before the END part unchanged: old blob minus its last 32 bytes
 * is a prefix of the new one.
 *
 *   header   8  magic "IPRQE\0\0\0"
 *            4  u32 version (1)
 *            4  u32 reserved (0)
 *   parts, until the end of the blob, each:
 *            4  u32 tag ("CORE" once, first; "ADPT" per model; "END\0" last)
 *            4  u32 reserved (0)
 *            8  u64 payload length L
 *            L  payload
 *            8  u64 XXH64(payload, seed 0)
 *
 *   CORE payload:
 *     u64 d, u64 hidden
 *     training config: i32 hidden, adapter_hidden, max_epochs, batch, patience,
 *       calibration; f64 lr, weight_decay, pairwise_weight, dropout; u64 seed
 *     f32 mean[d], f32 scale[d], f32 w1[hidden*d] (row-major), f32 b1[hidden]
 *   ADPT payload:
 *     u64 in (= hidden, or d when hidden == 0), u64 ah, u32 calib (0 none,
 *     1 Platt, 2 isotonic), u32 reserved, u64 nk (isotonic knots)
 *     f64 platt_a, platt_b, n_train, n_val, val_loss, val_mae
 *     f32 weights[ah ? ah*in + 2*ah + 1 : in + 1], f32 kz[nk], f32 kp[nk]
 *   END payload: u64 number of ADPT parts
 *
 * Load checks magic, version, every length against the bytes left, every
 * width against the limits in qe_internal.h, each part's hash, that weights
 * are finite and that isotonic knots increase; any failure is IPR_ERR_FORMAT
 * (IPR_ERR_VERSION for another version) with a message naming the part.
 */
#include "qe_internal.h"
#include "ipr/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define QE_MAGIC "IPRQE\0\0\0"
#define QE_VERSION 1u
#define TAG_CORE 0x45524f43u /* "CORE" */
#define TAG_ADPT 0x54504441u /* "ADPT" */
#define TAG_END 0x00444e45u  /* "END\0" */
#define CONFIG_BYTES 64
#define ADPT_FIXED (8 + 8 + 4 + 4 + 8 + 6 * 8)

/* --- writer --- */

struct wbuf {
    uint8_t *p;
    size_t n;
};

static void put_u32(struct wbuf *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct wbuf *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->p[w->n++] = (uint8_t)(v >> (8 * i));
}

static void put_f64(struct wbuf *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(w, u);
}

static void put_f32s(struct wbuf *w, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put_u32(w, u);
    }
}

static size_t core_len(const struct ipr_qe *qe)
{
    return 16 + CONFIG_BYTES + 4 * (2 * qe->d + qe->hidden * qe->d + qe->hidden);
}

static size_t adpt_len(const struct qe_adapter *a)
{
    return ADPT_FIXED + 4 * (qe_adapter_nparams(a->in, a->ah) + 2 * a->nk);
}

/* Part framing around a payload written by the caller at w->n + 16. */
static size_t part_begin(struct wbuf *w, uint32_t tag, size_t len)
{
    put_u32(w, tag);
    put_u32(w, 0);
    put_u64(w, (uint64_t)len);
    return w->n;
}

static void part_end(struct wbuf *w, size_t start)
{
    put_u64(w, (uint64_t)XXH64(w->p + start, w->n - start, 0));
}

int ipr_qe_save(const struct ipr_qe *qe, uint8_t **buf, size_t *len)
{
    if (!qe || !buf || !len)
        return ipr_error_set(IPR_ERR_INVAL, "qe_save: NULL argument");
    size_t total = 16 + 24 + core_len(qe);
    for (size_t j = 0; j < qe->m; j++)
        total += 24 + adpt_len(&qe->ad[j]);
    total += 24 + 8;
    struct wbuf w = { malloc(total), 0 };
    if (!w.p)
        return ipr_error_set(IPR_ERR_NOMEM, "qe_save: out of memory (%zu bytes)", total);
    memcpy(w.p, QE_MAGIC, 8);
    w.n = 8;
    put_u32(&w, QE_VERSION);
    put_u32(&w, 0);

    size_t s = part_begin(&w, TAG_CORE, core_len(qe));
    const struct ipr_qe_config *c = &qe->info;
    put_u64(&w, qe->d);
    put_u64(&w, qe->hidden);
    put_u32(&w, (uint32_t)c->hidden);
    put_u32(&w, (uint32_t)c->adapter_hidden);
    put_u32(&w, (uint32_t)c->max_epochs);
    put_u32(&w, (uint32_t)c->batch);
    put_u32(&w, (uint32_t)c->patience);
    put_u32(&w, (uint32_t)c->calibration);
    put_f64(&w, c->lr);
    put_f64(&w, c->weight_decay);
    put_f64(&w, c->pairwise_weight);
    put_f64(&w, c->dropout);
    put_u64(&w, c->seed);
    put_f32s(&w, qe->mean, qe->d);
    put_f32s(&w, qe->scale, qe->d);
    if (qe->hidden) {
        put_f32s(&w, qe->w1, qe->hidden * qe->d);
        put_f32s(&w, qe->b1, qe->hidden);
    }
    part_end(&w, s);

    for (size_t j = 0; j < qe->m; j++) {
        const struct qe_adapter *a = &qe->ad[j];
        s = part_begin(&w, TAG_ADPT, adpt_len(a));
        put_u64(&w, a->in);
        put_u64(&w, a->ah);
        put_u32(&w, (uint32_t)a->calib);
        put_u32(&w, 0);
        put_u64(&w, a->nk);
        put_f64(&w, a->ca);
        put_f64(&w, a->cb);
        put_f64(&w, a->n_train);
        put_f64(&w, a->n_val);
        put_f64(&w, a->val_loss);
        put_f64(&w, a->val_mae);
        put_f32s(&w, a->w, qe_adapter_nparams(a->in, a->ah));
        put_f32s(&w, a->kz, a->nk);
        put_f32s(&w, a->kp, a->nk);
        part_end(&w, s);
    }
    s = part_begin(&w, TAG_END, 8);
    put_u64(&w, qe->m);
    part_end(&w, s);
    *buf = w.p;
    *len = w.n;
    return IPR_OK;
}

/* --- reader --- */

struct rbuf {
    const uint8_t *p;
    size_t n, off;
};

static uint32_t get_u32(struct rbuf *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[r->off + i] << (8 * i);
    r->off += 4;
    return v;
}

static uint64_t get_u64(struct rbuf *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += 8;
    return v;
}

static double get_f64(struct rbuf *r)
{
    uint64_t u = get_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* Reads n floats; returns 0 if any is not finite. */
static int get_f32s(struct rbuf *r, float *v, size_t n)
{
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(r);
        memcpy(&v[i], &u, 4);
        ok &= isfinite(v[i]) != 0;
    }
    return ok;
}

static int bad(const char *what, size_t off)
{
    return ipr_error_set(IPR_ERR_FORMAT, "qe blob: %s (at byte %zu)", what, off);
}

static int read_core(struct rbuf *r, size_t plen, struct ipr_qe *qe)
{
    const size_t start = r->off;
    if (plen < 16 + CONFIG_BYTES)
        return bad("CORE part too short", start);
    uint64_t d = get_u64(r), hidden = get_u64(r);
    if (d == 0 || d > QE_MAX_DIM || hidden > QE_MAX_WIDTH)
        return bad("CORE sizes out of range", start);
    qe->d = (size_t)d;
    qe->hidden = (size_t)hidden;
    if (plen != core_len(qe))
        return bad("CORE length does not match its sizes", start);
    struct ipr_qe_config *c = &qe->info;
    c->hidden = (int)get_u32(r);
    c->adapter_hidden = (int)get_u32(r);
    c->max_epochs = (int)get_u32(r);
    c->batch = (int)get_u32(r);
    c->patience = (int)get_u32(r);
    c->calibration = (int)get_u32(r);
    c->lr = get_f64(r);
    c->weight_decay = get_f64(r);
    c->pairwise_weight = get_f64(r);
    c->dropout = get_f64(r);
    c->seed = get_u64(r);
    qe->mean = malloc(d * sizeof *qe->mean);
    qe->scale = malloc(d * sizeof *qe->scale);
    if (hidden) {
        qe->w1 = malloc(hidden * d * sizeof *qe->w1);
        qe->b1 = malloc(hidden * sizeof *qe->b1);
    }
    if (!qe->mean || !qe->scale || (hidden && (!qe->w1 || !qe->b1)))
        return ipr_error_set(IPR_ERR_NOMEM, "qe blob: out of memory for the trunk");
    int ok = get_f32s(r, qe->mean, d);
    ok &= get_f32s(r, qe->scale, d);
    if (hidden) {
        ok &= get_f32s(r, qe->w1, hidden * d);
        ok &= get_f32s(r, qe->b1, hidden);
    }
    if (!ok)
        return bad("CORE holds a non-finite number", start);
    return IPR_OK;
}

static int read_adapter(struct rbuf *r, size_t plen, const struct ipr_qe *qe, struct qe_adapter *a)
{
    const size_t start = r->off;
    if (plen < ADPT_FIXED)
        return bad("ADPT part too short", start);
    uint64_t in = get_u64(r), ah = get_u64(r);
    uint32_t calib = get_u32(r);
    (void)get_u32(r);
    uint64_t nk = get_u64(r);
    if (in != (qe->hidden ? qe->hidden : qe->d) || ah > QE_MAX_WIDTH || calib > QE_CALIB_ISOTONIC ||
        nk > QE_MAX_KNOTS || (calib == QE_CALIB_ISOTONIC) != (nk > 0))
        return bad("ADPT sizes or calibration kind out of range", start);
    a->in = (size_t)in;
    a->ah = (size_t)ah;
    a->calib = (int)calib;
    a->nk = (size_t)nk;
    if (plen != adpt_len(a))
        return bad("ADPT length does not match its sizes", start);
    a->ca = get_f64(r);
    a->cb = get_f64(r);
    a->n_train = get_f64(r);
    a->n_val = get_f64(r);
    a->val_loss = get_f64(r);
    a->val_mae = get_f64(r);
    if (!isfinite(a->ca) || !isfinite(a->cb))
        return bad("ADPT Platt parameters are not finite", start);
    size_t np = qe_adapter_nparams(a->in, a->ah);
    a->w = malloc(np * sizeof *a->w);
    if (nk) {
        a->kz = malloc(nk * sizeof *a->kz);
        a->kp = malloc(nk * sizeof *a->kp);
    }
    if (!a->w || (nk && (!a->kz || !a->kp)))
        return ipr_error_set(IPR_ERR_NOMEM, "qe blob: out of memory for an adapter");
    int ok = get_f32s(r, a->w, np);
    if (nk) {
        ok &= get_f32s(r, a->kz, nk);
        ok &= get_f32s(r, a->kp, nk);
    }
    if (!ok)
        return bad("ADPT holds a non-finite number", start);
    for (size_t i = 0; i < a->nk; i++)
        if ((i > 0 && !(a->kz[i] > a->kz[i - 1])) || !(a->kp[i] >= 0 && a->kp[i] <= 1))
            return bad("ADPT isotonic knots are not increasing or not in [0,1]", start);
    return IPR_OK;
}

int ipr_qe_load(const uint8_t *buf, size_t len, struct ipr_qe **out)
{
    if (!out)
        return ipr_error_set(IPR_ERR_INVAL, "qe_load: out is NULL");
    *out = NULL;
    if (!buf || len < 16 || memcmp(buf, QE_MAGIC, 8) != 0)
        return bad("not a quality-estimator blob (bad magic or shorter than its header)", 0);
    struct rbuf r = { buf, len, 8 };
    uint32_t version = get_u32(&r);
    if (version != QE_VERSION)
        return ipr_error_set(IPR_ERR_VERSION, "qe blob: version %u, this build reads version %u",
                             version, QE_VERSION);
    if (get_u32(&r) != 0)
        return bad("reserved header field is not zero", 12);
    struct ipr_qe *qe = calloc(1, sizeof *qe);
    if (!qe)
        return ipr_error_set(IPR_ERR_NOMEM, "qe_load: out of memory");
    int rc = IPR_OK, have_core = 0, have_end = 0;
    while (r.off < len) {
        size_t at = r.off;
        if (len - r.off < 16) {
            rc = bad("truncated part header", at);
            goto fail;
        }
        uint32_t tag = get_u32(&r);
        if (get_u32(&r) != 0) {
            rc = bad("reserved part field is not zero", at);
            goto fail;
        }
        uint64_t plen = get_u64(&r);
        if (plen > len - r.off || len - r.off - plen < 8) {
            rc = bad("part runs past the end of the blob (truncated?)", at);
            goto fail;
        }
        const uint8_t *payload = buf + r.off;
        struct rbuf h = { buf, len, r.off + (size_t)plen };
        if (get_u64(&h) != (uint64_t)XXH64(payload, (size_t)plen, 0)) {
            rc = bad("part hash mismatch (corrupted)", at);
            goto fail;
        }
        struct rbuf p = { buf, r.off + (size_t)plen, r.off };
        if (have_end) {
            rc = bad("bytes after the END part", at);
        } else if (tag == TAG_END && have_core) {
            if (plen != 8 || get_u64(&p) != qe->m)
                rc = bad("END part does not match the number of adapters (truncated?)", at);
            have_end = 1;
        } else if (tag == TAG_CORE && !have_core) {
            rc = read_core(&p, (size_t)plen, qe);
            have_core = 1;
        } else if (tag == TAG_ADPT && have_core) {
            if (qe->m >= QE_MAX_WIDTH) {
                rc = bad("too many adapters", at);
                goto fail;
            }
            if (qe->m == qe->cap) {
                size_t cap = qe->cap ? 2 * qe->cap : 8;
                struct qe_adapter *ad = realloc(qe->ad, cap * sizeof *ad);
                if (!ad) {
                    rc = ipr_error_set(IPR_ERR_NOMEM, "qe_load: out of memory");
                    goto fail;
                }
                memset(ad + qe->cap, 0, (cap - qe->cap) * sizeof *ad);
                qe->ad = ad;
                qe->cap = cap;
            }
            qe->m++; /* counted first so a failed read is freed with the rest */
            rc = read_adapter(&p, (size_t)plen, qe, &qe->ad[qe->m - 1]);
        } else {
            rc = bad(tag == TAG_CORE ? "second CORE part" : tag == TAG_ADPT ? "ADPT before CORE"
                                                                            : "unknown or misplaced part", at);
        }
        if (rc)
            goto fail;
        r.off += (size_t)plen + 8;
    }
    if (!have_core || !have_end) {
        rc = bad(have_core ? "no END part (truncated?)" : "no CORE part", r.off);
        goto fail;
    }
    *out = qe;
    return IPR_OK;
fail:
    ipr_qe_free(qe);
    return rc;
}
