/*
 * qe.c — the public quality-estimator API (include/ipr/qe.h): default
 * configuration, training of the standardisation + trunk + adapters, adding
 * one adapter on the frozen trunk, calibration on validation rows, and
 * allocation-free prediction.
 */
#include "qe_internal.h"
#include "ipr/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void ipr_qe_config_default(struct ipr_qe_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->hidden = 128;
    cfg->adapter_hidden = 32;
    cfg->max_epochs = 200;
    cfg->batch = 128;
    cfg->patience = 10;
    cfg->lr = 1e-3;
    cfg->weight_decay = 1e-2;
    cfg->pairwise_weight = 1; /* RouterBench training folds: docs/qe.md */
    cfg->dropout = 0.1;
    cfg->threads = 0;
    cfg->seed = 42;
    cfg->verbose = 0;
    cfg->calibration = IPR_QE_CALIB_SHARED;
    cfg->std_floor = 10;
    cfg->eval_every = 100000; /* matters only for epochs longer than 100k rows */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check_config(const struct ipr_qe_config *c)
{
    if (c->hidden < 0 || (unsigned)c->hidden > QE_MAX_WIDTH)
        return ipr_error_set(IPR_ERR_INVAL, "qe: hidden must be in [0, %u], got %d", QE_MAX_WIDTH, c->hidden);
    if (c->adapter_hidden < 0 || (unsigned)c->adapter_hidden > QE_MAX_WIDTH)
        return ipr_error_set(IPR_ERR_INVAL, "qe: adapter_hidden must be in [0, %u], got %d", QE_MAX_WIDTH,
                             c->adapter_hidden);
    if (c->max_epochs < 1 || c->batch < 1 || c->batch > 1 << 20 || c->patience < 1)
        return ipr_error_set(IPR_ERR_INVAL, "qe: max_epochs, batch (<= 2^20) and patience must be >= 1");
    if (!(c->lr > 0) || !isfinite(c->lr) || !(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return ipr_error_set(IPR_ERR_INVAL, "qe: lr must be > 0 and weight_decay >= 0, both finite");
    if (!(c->pairwise_weight >= 0) || !isfinite(c->pairwise_weight))
        return ipr_error_set(IPR_ERR_INVAL, "qe: pairwise_weight must be a finite number >= 0");
    if (c->calibration < IPR_QE_CALIB_AUTO || c->calibration > IPR_QE_CALIB_SHARED)
        return ipr_error_set(IPR_ERR_INVAL, "qe: unknown calibration policy %d", c->calibration);
    if (c->eval_every < 0)
        return ipr_error_set(IPR_ERR_INVAL, "qe: eval_every must be >= 0");
    if (!(c->std_floor >= 0) || !isfinite(c->std_floor))
        return ipr_error_set(IPR_ERR_INVAL, "qe: std_floor must be a finite number >= 0");
    if (!(c->dropout >= 0 && c->dropout < 1))
        return ipr_error_set(IPR_ERR_INVAL, "qe: dropout must be in [0, 1)");
    return IPR_OK;
}

static int check_data(const struct ipr_qe_data *t, const char *what)
{
    if (!t || !t->x || !t->y || t->d == 0 || t->m == 0)
        return ipr_error_set(IPR_ERR_INVAL, "qe: %s data is empty or has no x/y", what);
    if (t->d > QE_MAX_DIM || t->m > QE_MAX_WIDTH)
        return ipr_error_set(IPR_ERR_LIMIT, "qe: %s data too wide (d %zu, m %zu)", what, t->d, t->m);
    for (size_t i = 0; i < t->n; i++)
        for (size_t j = 0; j < t->m; j++) {
            double v = t->y[i * t->m + j];
            if (!isnan(v) && !(v >= 0 && v <= 1))
                return ipr_error_set(IPR_ERR_INVAL, "qe: %s label (row %zu, model %zu) = %g is outside [0,1]",
                                     what, i, j, v);
        }
    return IPR_OK;
}

/* Rows usable for training: finite embedding and at least one label. */
static size_t usable_rows(const struct ipr_qe_data *t, size_t *rows)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        const float *x = t->x + i * t->d;
        int ok = 1;
        for (size_t c = 0; c < t->d && ok; c++)
            ok = isfinite(x[c]);
        if (!ok)
            continue;
        int lab = 0;
        for (size_t j = 0; j < t->m && !lab; j++)
            lab = !isnan(t->y[i * t->m + j]);
        if (lab)
            rows[k++] = i;
    }
    return k;
}

/* Without a validation set, a seeded 10% of the usable rows is held out. */
static void holdout(size_t *rows, size_t n, uint64_t seed, size_t *n_tr, size_t **va, size_t *n_va)
{
    uint64_t st = seed ^ 0x9fb21c651e98df25ull;
    for (size_t i = n; i > 1; i--) {
        size_t k = (size_t)(qe_splitmix(&st) % i), t = rows[i - 1];
        rows[i - 1] = rows[k];
        rows[k] = t;
    }
    size_t nv = n >= 2 ? (n + 9) / 10 : 0;
    *va = rows + (n - nv);
    *n_va = nv;
    *n_tr = n - nv;
}

void qe_adapter_clear(struct qe_adapter *a)
{
    free(a->w);
    free(a->kz);
    free(a->kp);
    memset(a, 0, sizeof *a);
}

void ipr_qe_free(struct ipr_qe *qe)
{
    if (!qe)
        return;
    for (size_t j = 0; j < qe->m; j++)
        qe_adapter_clear(&qe->ad[j]);
    free(qe->ad);
    free(qe->mean);
    free(qe->scale);
    free(qe->w1);
    free(qe->b1);
    free(qe);
}

size_t ipr_qe_n_models(const struct ipr_qe *qe) { return qe ? qe->m : 0; }
size_t ipr_qe_dim(const struct ipr_qe *qe) { return qe ? qe->d : 0; }

size_t ipr_qe_scratch_floats(const struct ipr_qe *qe)
{
    size_t ah = 0;
    for (size_t j = 0; j < qe->m; j++)
        if (qe->ad[j].ah > ah)
            ah = qe->ad[j].ah;
    return qe->d + qe->hidden + ah + 1;
}

/* Trunk features of one embedding into f (hidden, or d without trunk); xs
 * holds d floats. Returns 0 when x has a non-finite value. */
static int features(const struct ipr_qe *qe, const float *x, float *xs, float **f_out, float *h)
{
    const size_t d = qe->d, H = qe->hidden;
    int ok = 1;
    for (size_t i = 0; i < d; i++) {
        ok &= isfinite(x[i]) != 0;
        xs[i] = (x[i] - qe->mean[i]) * qe->scale[i];
    }
    if (!ok)
        return 0;
    if (!H) {
        *f_out = xs;
        return 1;
    }
    for (size_t k = 0; k < H; k++) {
        float v = qe_dot(qe->w1 + k * d, xs, d) + qe->b1[k];
        h[k] = v > 0 ? v : 0;
    }
    *f_out = h;
    return 1;
}

void ipr_qe_predict(const struct ipr_qe *qe, const float *x, float *scratch, double *out)
{
    float *xs = scratch, *h = scratch + qe->d, *tmp = h + qe->hidden, *f;
    if (!features(qe, x, xs, &f, h)) {
        for (size_t j = 0; j < qe->m; j++)
            out[j] = NAN;
        return;
    }
    for (size_t j = 0; j < qe->m; j++) {
        const struct qe_adapter *a = &qe->ad[j];
        out[j] = qe_calibrate(a, qe_adapter_logit(a, f, tmp));
    }
}

static int grow(struct ipr_qe *qe, size_t need)
{
    if (need <= qe->cap)
        return IPR_OK;
    size_t cap = qe->cap ? qe->cap * 2 : 8;
    while (cap < need)
        cap *= 2;
    struct qe_adapter *ad = realloc(qe->ad, cap * sizeof *ad);
    if (!ad)
        return ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for adapters");
    memset(ad + qe->cap, 0, (cap - qe->cap) * sizeof *ad);
    qe->ad = ad;
    qe->cap = cap;
    return IPR_OK;
}

/* Calibrates adapters [j0, j0+m) of qe from the logits z (n, m) of val rows
 * with labels y (row stride ldy, column offset 0), and fills the report's
 * val_loss / val_mae over those adapters. */
static int calibrate_and_score(struct ipr_qe *qe, size_t j0, size_t m, const float *z,
                               const double *y, const size_t *rows, size_t n, size_t ldy,
                               int policy, struct ipr_qe_report *rep)
{
    float *zz = malloc((n ? n : 1) * sizeof *zz);
    double *yy = malloc((n ? n : 1) * sizeof *yy);
    if (!zz || !yy) {
        free(zz), free(yy);
        return ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for calibration");
    }
    double tot_loss = 0, tot_abs = 0, sa = 1, sb = 0;
    size_t tot = 0;
    int shared = policy == IPR_QE_CALIB_SHARED;
    if (shared && j0 > 0) { /* a new adapter reuses the estimator's shared scaling */
        sa = qe->ad[0].ca;
        sb = qe->ad[0].cb;
        shared = qe->ad[0].calib == QE_CALIB_PLATT ? 2 : 3;
    } else if (shared) {
        size_t k = 0;
        float *pz = malloc((n * m + 1) * sizeof *pz);
        double *py = malloc((n * m + 1) * sizeof *py);
        struct qe_adapter tmp;
        memset(&tmp, 0, sizeof tmp);
        int rc = pz && py ? IPR_OK : ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for calibration");
        for (size_t i = 0; i < n && !rc; i++)
            for (size_t j = 0; j < m; j++) {
                double v = y[rows[i] * ldy + j];
                if (!isnan(v)) {
                    pz[k] = z[i * m + j];
                    py[k++] = v;
                }
            }
        if (!rc)
            rc = qe_fit_calibration(&tmp, pz, py, k, IPR_QE_CALIB_PLATT);
        free(pz), free(py);
        if (rc) {
            free(zz), free(yy);
            return rc;
        }
        sa = tmp.ca;
        sb = tmp.cb;
        shared = tmp.calib == QE_CALIB_PLATT ? 2 : 3;
        qe_adapter_clear(&tmp);
    }
    for (size_t j = 0; j < m; j++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            double v = y[rows[i] * ldy + j];
            if (isnan(v))
                continue;
            zz[k] = z[i * m + j];
            yy[k++] = v;
        }
        struct qe_adapter *a = &qe->ad[j0 + j];
        int rc = shared ? qe_fit_calibration(a, zz, yy, 0, IPR_QE_CALIB_OFF)
                        : qe_fit_calibration(a, zz, yy, k, policy);
        if (shared == 2) {
            a->calib = QE_CALIB_PLATT;
            a->ca = sa;
            a->cb = sb;
        }
        if (rc) {
            free(zz), free(yy);
            return rc;
        }
        double l = 0, e = 0;
        for (size_t i = 0; i < k; i++) {
            double p = qe_calibrate(a, zz[i]);
            double pc = p < 1e-12 ? 1e-12 : p > 1 - 1e-12 ? 1 - 1e-12 : p;
            l += -(yy[i] * log(pc) + (1 - yy[i]) * log(1 - pc));
            e += fabs(p - yy[i]);
        }
        a->n_val = (double)k;
        a->val_loss = k ? l / (double)k : NAN;
        a->val_mae = k ? e / (double)k : NAN;
        tot_loss += l;
        tot_abs += e;
        tot += k;
    }
    rep->val_loss = tot ? tot_loss / (double)tot : NAN;
    rep->val_mae = tot ? tot_abs / (double)tot : NAN;
    free(zz), free(yy);
    return IPR_OK;
}

static void label_means(const double *y, size_t ldy, size_t m, const size_t *rows, size_t n,
                        double *prior, double *count)
{
    for (size_t j = 0; j < m; j++) {
        double s = 0, c = 0;
        for (size_t i = 0; i < n; i++) {
            double v = y[rows[i] * ldy + j];
            if (!isnan(v))
                s += v, c += 1;
        }
        prior[j] = c > 0 ? s / c : NAN;
        count[j] = c;
    }
}

/* The configuration to train with (cfg_in or the defaults) and the checks
 * both training entry points start with. */
static int prepare(const struct ipr_qe_config *cfg_in, const struct ipr_qe_data *train,
                   const struct ipr_qe_data *val, struct ipr_qe_config *cfg)
{
    int rc;
    if (cfg_in)
        *cfg = *cfg_in;
    else
        ipr_qe_config_default(cfg);
    if ((rc = check_config(cfg)) || (rc = check_data(train, "training")))
        return rc;
    if (val && (rc = check_data(val, "validation")))
        return rc;
    return IPR_OK;
}

int ipr_qe_train(const struct ipr_qe_config *cfg_in, const struct ipr_qe_data *train,
                 const struct ipr_qe_data *val, struct ipr_qe **out, struct ipr_qe_report *rep_out)
{
    struct ipr_qe_config cfg;
    struct ipr_qe_report rep_local, *rep = rep_out ? rep_out : &rep_local;
    double t0 = now_s();
    int rc;
    if (!out)
        return ipr_error_set(IPR_ERR_INVAL, "qe: out is NULL");
    *out = NULL;
    memset(rep, 0, sizeof *rep);
    if ((rc = prepare(cfg_in, train, val, &cfg)) != IPR_OK)
        return rc;
    if (val && (val->d != train->d || val->m != train->m))
        return ipr_error_set(IPR_ERR_INVAL, "qe: validation data is (d %zu, m %zu), training (d %zu, m %zu)",
                             val->d, val->m, train->d, train->m);
    const size_t d = train->d, m = train->m, H = (size_t)cfg.hidden;
    size_t *tr_rows = malloc((train->n ? train->n : 1) * sizeof *tr_rows);
    size_t *va_rows = NULL, n_tr, n_va = 0, *va = NULL;
    struct ipr_qe *qe = calloc(1, sizeof *qe);
    struct qe_pool *pool = NULL;
    struct qe_net net;
    float *theta = NULL, *z = NULL;
    double *prior = malloc(2 * m * sizeof *prior);
    if (!tr_rows || !qe || !prior)
        goto nomem;
    n_tr = usable_rows(train, tr_rows);
    if (val) {
        va_rows = malloc((val->n ? val->n : 1) * sizeof *va_rows);
        if (!va_rows)
            goto nomem;
        n_va = usable_rows(val, va_rows);
        va = va_rows;
    } else {
        holdout(tr_rows, n_tr, cfg.seed, &n_tr, &va, &n_va);
    }
    if (n_tr == 0) {
        rc = ipr_error_set(IPR_ERR_INVAL, "qe: no training row has a finite embedding and a label");
        goto fail;
    }

    /* standardisation from the training rows, in double, in row order */
    qe->d = d;
    qe->hidden = H;
    qe->mean = malloc(d * sizeof *qe->mean);
    qe->scale = malloc(d * sizeof *qe->scale);
    double *acc = calloc(2 * d, sizeof *acc);
    if (!qe->mean || !qe->scale || !acc) {
        free(acc);
        goto nomem;
    }
    for (size_t i = 0; i < n_tr; i++) {
        const float *x = train->x + tr_rows[i] * d;
        for (size_t c = 0; c < d; c++)
            acc[c] += x[c];
    }
    for (size_t c = 0; c < d; c++)
        acc[c] /= (double)n_tr;
    for (size_t i = 0; i < n_tr; i++) {
        const float *x = train->x + tr_rows[i] * d;
        for (size_t c = 0; c < d; c++) {
            double e = x[c] - acc[c];
            acc[d + c] += e * e;
        }
    }
    /* Standard deviations below std_floor x their median are raised to it,
     * so that near-constant features (rare hashed n-grams) are not blown up
     * to unit variance and fitted as noise. */
    double *sds = malloc(2 * d * sizeof *sds), floor_sd = 0;
    if (!sds) {
        free(acc);
        goto nomem;
    }
    for (size_t c = 0; c < d; c++)
        sds[c] = sds[d + c] = sqrt(acc[d + c] / (double)n_tr);
    if (cfg.std_floor > 0) {
        qsort(sds + d, d, sizeof *sds, cmp_double);
        floor_sd = cfg.std_floor * sds[d + d / 2];
    }
    for (size_t c = 0; c < d; c++) {
        double sd = sds[c];
        qe->mean[c] = (float)acc[c];
        qe->scale[c] = sd > 1e-6 ? (float)(1.0 / (sd > floor_sd ? sd : floor_sd)) : 0.0f;
    }
    free(sds);
    free(acc);

    qe_net_setup(&net, d, H, m, (size_t)cfg.adapter_hidden);
    net.mean = qe->mean;
    net.scale = qe->scale;
    net.dropout = (float)cfg.dropout;
    net.pairwise = cfg.pairwise_weight;
    net.seed = cfg.seed;
    theta = malloc(net.n_params * sizeof *theta);
    pool = qe_pool_new(cfg.threads);
    if (!theta || !pool)
        goto nomem;
    label_means(train->y, m, m, tr_rows, n_tr, prior, prior + m);
    qe_net_init(&net, theta, cfg.seed, prior);
    struct qe_src src_tr = { train->x, train->y };
    struct qe_src src_va = val ? (struct qe_src){ val->x, val->y } : src_tr;
    if ((rc = qe_fit(&net, theta, src_tr, tr_rows, n_tr, src_va, va, n_va, &cfg, pool, rep)))
        goto fail;

    /* split theta into the trunk and the adapters */
    if (H) {
        qe->w1 = malloc(H * d * sizeof *qe->w1);
        qe->b1 = malloc(H * sizeof *qe->b1);
        if (!qe->w1 || !qe->b1)
            goto nomem;
        memcpy(qe->w1, theta, H * d * sizeof *qe->w1);
        memcpy(qe->b1, theta + H * d, H * sizeof *qe->b1);
    }
    if ((rc = grow(qe, m)))
        goto fail;
    for (size_t j = 0; j < m; j++) {
        struct qe_adapter *a = &qe->ad[j];
        a->in = net.feat;
        a->ah = net.ah;
        a->ca = 1;
        a->n_train = prior[m + j];
        a->w = malloc(net.n_adapter * sizeof *a->w);
        qe->m = j + 1;
        if (!a->w)
            goto nomem;
        memcpy(a->w, theta + net.n_trunk + j * net.n_adapter, net.n_adapter * sizeof *a->w);
    }
    qe->info = cfg;
    qe->info.threads = 0;
    qe->info.verbose = 0;

    z = malloc((n_va ? n_va : 1) * m * sizeof *z);
    if (!z)
        goto nomem;
    if ((rc = qe_net_logits(&net, theta, src_va, va, n_va, pool, z)))
        goto fail;
    if ((rc = calibrate_and_score(qe, 0, m, z, src_va.y, va, n_va, m, cfg.calibration, rep)))
        goto fail;
    rep->seconds = now_s() - t0;
    free(tr_rows), free(va_rows), free(theta), free(z), free(prior);
    qe_pool_free(pool);
    *out = qe;
    return IPR_OK;
nomem:
    rc = ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory while training");
fail:
    free(tr_rows), free(va_rows), free(theta), free(z), free(prior);
    qe_pool_free(pool);
    ipr_qe_free(qe);
    return rc;
}

struct feat_job {
    const struct ipr_qe *qe;
    const float *x;
    const size_t *rows;
    size_t n;
    float *out;  /* (n, feat) */
    float *work; /* (slots, d + hidden) */
    size_t slots;
};

static void feat_task(void *arg, size_t s)
{
    struct feat_job *j = arg;
    const size_t d = j->qe->d, H = j->qe->hidden, F = H ? H : d;
    float *xs = j->work + s * (d + H), *h = xs + d, *f;
    for (size_t i = s; i < j->n; i += j->slots) {
        features(j->qe, j->x + j->rows[i] * d, xs, &f, h);
        memcpy(j->out + i * F, f, F * sizeof *f);
    }
}

int ipr_qe_add_adapter(struct ipr_qe *qe, const struct ipr_qe_config *cfg_in,
                       const struct ipr_qe_data *train, const struct ipr_qe_data *val,
                       struct ipr_qe_report *rep_out)
{
    struct ipr_qe_config cfg;
    struct ipr_qe_report rep_local, *rep = rep_out ? rep_out : &rep_local;
    double t0 = now_s();
    int rc;
    if (!qe)
        return ipr_error_set(IPR_ERR_INVAL, "qe: add_adapter on NULL");
    memset(rep, 0, sizeof *rep);
    if ((rc = prepare(cfg_in, train, val, &cfg)) != IPR_OK)
        return rc;
    if (train->m != 1 || (val && val->m != 1))
        return ipr_error_set(IPR_ERR_INVAL, "qe: add_adapter takes one model's labels (m = 1)");
    if (train->d != qe->d || (val && val->d != qe->d))
        return ipr_error_set(IPR_ERR_INVAL, "qe: embedding size %zu does not match the estimator's %zu",
                             train->d, qe->d);
    if (qe->m >= QE_MAX_WIDTH)
        return ipr_error_set(IPR_ERR_LIMIT, "qe: too many adapters");
    const size_t d = qe->d, F = qe->hidden ? qe->hidden : d;
    size_t n_all = train->n + (val ? val->n : 0);
    size_t *rows = malloc((n_all ? n_all : 1) * sizeof *rows);
    size_t *seq = malloc((n_all ? n_all : 1) * sizeof *seq);
    float *feat = NULL, *theta = NULL, *z = NULL, *work = NULL;
    double *y = malloc((n_all ? n_all : 1) * sizeof *y);
    struct qe_pool *pool = qe_pool_new(cfg.threads);
    struct qe_adapter ad;
    memset(&ad, 0, sizeof ad);
    if (!rows || !seq || !y || !pool)
        goto nomem;
    size_t n_tr = usable_rows(train, rows), n_va = 0, *va_unused;
    if (val)
        n_va = usable_rows(val, rows + n_tr);
    else
        holdout(rows, n_tr, cfg.seed, &n_tr, &va_unused, &n_va);
    if (n_tr == 0) {
        rc = ipr_error_set(IPR_ERR_INVAL, "qe: no labelled row with a finite embedding for the new model");
        goto fail;
    }
    /* frozen features of every used row: training rows then validation rows */
    const size_t n = n_tr + n_va;
    feat = malloc(n * F * sizeof *feat);
    struct feat_job fj = { .qe = qe, .rows = rows, .out = feat, .slots = 16 };
    work = malloc(fj.slots * (d + qe->hidden) * sizeof *work);
    if (!feat || !work)
        goto nomem;
    fj.work = work;
    fj.x = train->x;
    fj.n = n_tr;
    qe_pool_run(pool, feat_task, &fj, fj.slots);
    if (val && n_va) {
        fj.x = val->x;
        fj.rows = rows + n_tr;
        fj.out = feat + n_tr * F;
        fj.n = n_va;
        qe_pool_run(pool, feat_task, &fj, fj.slots);
    } else if (n_va) {
        fj.rows = rows + n_tr;
        fj.out = feat + n_tr * F;
        fj.n = n_va;
        qe_pool_run(pool, feat_task, &fj, fj.slots);
    }
    for (size_t i = 0; i < n; i++) {
        y[i] = i < n_tr || !val ? train->y[rows[i]] : val->y[rows[i]];
        seq[i] = i;
    }

    struct qe_net net;
    qe_net_setup(&net, F, 0, 1, (size_t)cfg.adapter_hidden);
    net.dropout = (float)cfg.dropout;
    net.seed = cfg.seed;
    theta = malloc(net.n_params * sizeof *theta);
    z = malloc((n_va ? n_va : 1) * sizeof *z);
    if (!theta || !z)
        goto nomem;
    double prior, count;
    label_means(y, 1, 1, seq, n_tr, &prior, &count);
    qe_net_init(&net, theta, cfg.seed ^ (0x9e3779b97f4a7c15ull * (qe->m + 1)), &prior);
    struct qe_src src = { feat, y };
    if ((rc = qe_fit(&net, theta, src, seq, n_tr, src, seq + n_tr, n_va, &cfg, pool, rep)))
        goto fail;
    if ((rc = grow(qe, qe->m + 1)))
        goto fail;
    ad.in = F;
    ad.ah = net.ah;
    ad.w = theta;
    ad.ca = 1;
    ad.n_train = count;
    theta = NULL;
    if ((rc = qe_net_logits(&net, ad.w, src, seq + n_tr, n_va, pool, z)))
        goto fail;
    qe->ad[qe->m] = ad; /* calibrate in place, then commit by counting it */
    memset(&ad, 0, sizeof ad);
    rc = calibrate_and_score(qe, qe->m, 1, z, y, seq + n_tr, n_va, 1, cfg.calibration, rep);
    if (rc) {
        qe_adapter_clear(&qe->ad[qe->m]);
        goto fail;
    }
    qe->m++;
    rep->seconds = now_s() - t0;
    free(rows), free(seq), free(y), free(feat), free(work), free(z);
    qe_pool_free(pool);
    return IPR_OK;
nomem:
    rc = ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory while adding an adapter");
fail:
    qe_adapter_clear(&ad);
    free(rows), free(seq), free(y), free(feat), free(work), free(z), free(theta);
    qe_pool_free(pool);
    return rc;
}
