/*
 * test_qe.c — the quality estimator: finite-difference gradient checks of the
 * trunk, the adapters, the masked cross-entropy and the pairwise loss (with and
 * without dropout), a double-precision reference forward pass, recovery of a
 * known logistic function, masking, determinism (seeds and thread counts),
 * add_adapter's byte-identical prefix, calibration, save/load round trips,
 * truncated and corrupted blobs, and non-finite inputs.
 */
#include "check.h"
#include "ipr/err.h"
#include "ipr/qe.h"
#include "qe/qe_internal.h"

#include <stdint.h>

static uint64_t rng_state = 12345;
static double urand(void) { return (double)(qe_splitmix(&rng_state) >> 11) * 0x1.0p-53; }
static double nrand(void)
{
    double u1 = urand() + 1e-12, u2 = urand();
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* --- gradient checks --- */

/* Objective the engine differentiates, evaluated by the engine itself. */
static double net_obj(const struct qe_net *net, const float *theta, struct qe_src src, const size_t *rows,
                      size_t n, int train, double il, double ip, float *work)
{
    double b = 0, p = 0;
    qe_net_chunk(net, theta, src, rows, n, train, 7, il, ip, NULL, work, &b, &p, NULL);
    return il * b + net->pairwise * ip * p;
}

/* Double-precision reference of the forward pass and loss (no dropout). */
static double ref_obj(const struct qe_net *net, const float *theta, struct qe_src src, const size_t *rows,
                      size_t n, double il, double ip)
{
    const size_t in = net->in, H = net->hidden, F = net->feat, m = net->m, ah = net->ah;
    double bce = 0, pair = 0, f[64], z[16];
    for (size_t r = 0; r < n; r++) {
        const float *x = src.x + rows[r] * in;
        double xs[64];
        for (size_t i = 0; i < in; i++)
            xs[i] = net->mean ? ((double)x[i] - net->mean[i]) * net->scale[i] : x[i];
        if (H) {
            for (size_t h = 0; h < H; h++) {
                double v = theta[H * in + h];
                for (size_t i = 0; i < in; i++)
                    v += (double)theta[h * in + i] * xs[i];
                f[h] = v > 0 ? v : 0;
            }
        } else {
            for (size_t i = 0; i < in; i++)
                f[i] = xs[i];
        }
        for (size_t j = 0; j < m; j++) {
            const float *P = theta + net->n_trunk + j * net->n_adapter;
            double zz;
            if (!ah) {
                zz = P[F];
                for (size_t i = 0; i < F; i++)
                    zz += (double)P[i] * f[i];
            } else {
                zz = P[ah * F + 2 * ah];
                for (size_t u = 0; u < ah; u++) {
                    double a = P[ah * F + u];
                    for (size_t i = 0; i < F; i++)
                        a += (double)P[u * F + i] * f[i];
                    zz += (double)P[ah * F + ah + u] * (a > 0 ? a : 0);
                }
            }
            z[j] = zz;
        }
        const double *y = src.y + rows[r] * m;
        for (size_t j = 0; j < m; j++) {
            if (isnan(y[j]))
                continue;
            bce += qe_softplus(z[j]) - y[j] * z[j];
            for (size_t k = j + 1; k < m; k++) {
                if (isnan(y[k]) || y[k] == y[j])
                    continue;
                double s = y[j] > y[k] ? 1 : -1;
                pair += fabs(y[j] - y[k]) * qe_softplus(-s * (z[j] - z[k]));
            }
        }
    }
    return il * bce + net->pairwise * ip * pair;
}

struct gc_case {
    size_t in, hidden, m, ah;
    double pairwise;
    float dropout;
    int standardise;
};

static void gradcheck(struct gc_case c)
{
    enum { N = 9 };
    struct qe_net net;
    qe_net_setup(&net, c.in, c.hidden, c.m, c.ah);
    net.pairwise = c.pairwise;
    net.dropout = c.dropout;
    net.seed = 99;
    float x[N * 64], mean[64], scale[64];
    double y[N * 16];
    for (size_t i = 0; i < N * c.in; i++)
        x[i] = (float)(2 * nrand() + 1);
    for (size_t i = 0; i < c.in; i++) {
        mean[i] = 1;
        scale[i] = 0.5f;
    }
    if (c.standardise) {
        net.mean = mean;
        net.scale = scale;
    }
    for (size_t i = 0; i < N * c.m; i++) {
        double u = urand();
        y[i] = u < 0.2 ? NAN : u < 0.5 ? 0.0 : u < 0.8 ? 1.0 : urand(); /* masked, 0/1, fractional */
    }
    size_t rows[N];
    size_t lab = 0, pairs = 0;
    for (size_t i = 0; i < N; i++) {
        size_t l, p;
        rows[i] = N - 1 - i;
        qe_row_counts(y + i * c.m, c.m, &l, &p);
        lab += l;
        pairs += p;
    }
    double il = 1.0 / (double)lab, ip = pairs ? 1.0 / (double)pairs : 0;
    float *theta = malloc(net.n_params * sizeof *theta), *grad = malloc(net.n_params * sizeof *grad);
    float *work = malloc(qe_net_work_floats(&net) * sizeof *work);
    qe_net_init(&net, theta, 5, NULL);
    /* biases away from zero so that few ReLU kinks sit within eps */
    for (size_t k = 0; k < net.n_params; k++)
        theta[k] += (float)(0.1 * nrand());
    struct qe_src src = { x, y };
    double b = 0, p = 0;
    qe_net_chunk(&net, theta, src, rows, N, 1, 7, il, ip, grad, work, &b, &p, NULL);
    if (c.dropout == 0) {
        double ref = ref_obj(&net, theta, src, rows, N, il, ip), got = il * b + net.pairwise * ip * p;
        CHECK_NEAR(got, ref, 1e-5 * fabs(ref) + 1e-6);
    }
    /* Float activations: an objective of size ~1 is known to ~1e-7, so with
     * eps = 1e-3 a central difference carries ~1e-4 of noise; we require the
     * error norm of each layer to be under 1% of the gradient's norm. */
    const float eps = 1e-3f;
    size_t lo_of[20], hi_of[20], nl = 0;
    if (c.hidden) {
        lo_of[nl] = 0, hi_of[nl++] = c.hidden * c.in;             /* W1 */
        lo_of[nl] = c.hidden * c.in, hi_of[nl++] = net.n_trunk;    /* b1 */
    }
    for (size_t j = 0; j < c.m; j++)                               /* adapters */
        lo_of[nl] = net.n_trunk + j * net.n_adapter, hi_of[nl++] = net.n_trunk + (j + 1) * net.n_adapter;
    for (size_t s = 0; s < nl; s++) {
        size_t lo = lo_of[s], hi = hi_of[s];
        double en = 0, gn = 0;
        for (size_t k = lo; k < hi; k++) {
            float keep = theta[k];
            theta[k] = keep + eps;
            double fp = net_obj(&net, theta, src, rows, N, 1, il, ip, work);
            theta[k] = keep - eps;
            double fm = net_obj(&net, theta, src, rows, N, 1, il, ip, work);
            theta[k] = keep;
            double fd = (fp - fm) / (2 * (double)eps);
            en += (fd - grad[k]) * (fd - grad[k]);
            gn += (double)grad[k] * grad[k];
        }
        CHECK_MSG(gn > 0, "layer [%zu,%zu) has a zero gradient", lo, hi);
        CHECK_MSG(sqrt(en) <= 1e-2 * sqrt(gn) + 1e-6, "layer [%zu,%zu): |fd - g| = %g, |g| = %g", lo, hi,
                  sqrt(en), sqrt(gn));
    }
    free(theta), free(grad), free(work);
}

static void test_gradcheck_trunk_mlp_adapters(void)
{
    gradcheck((struct gc_case){ .in = 7, .hidden = 6, .m = 3, .ah = 4, .standardise = 1 });
}
static void test_gradcheck_pairwise(void)
{
    gradcheck((struct gc_case){ .in = 5, .hidden = 6, .m = 4, .ah = 3, .pairwise = 0.7, .standardise = 1 });
}
static void test_gradcheck_dropout(void)
{
    gradcheck((struct gc_case){ .in = 6, .hidden = 8, .m = 3, .ah = 4, .pairwise = 0.3, .dropout = 0.25f });
}
static void test_gradcheck_linear_and_no_trunk(void)
{
    gradcheck((struct gc_case){ .in = 6, .hidden = 5, .m = 3, .ah = 0, .pairwise = 0.5, .standardise = 1 });
    gradcheck((struct gc_case){ .in = 6, .hidden = 0, .m = 3, .ah = 4, .pairwise = 0.5, .standardise = 1 });
    gradcheck((struct gc_case){ .in = 6, .hidden = 0, .m = 2, .ah = 0 });
}

/* Masked labels contribute nothing: the gradient with a NaN label equals the
 * gradient of a table where that row's label is NaN with another payload, and
 * the reference objective skips it (checked above). Here: a row whose only
 * label is masked yields an all-zero gradient. */
static void test_masked_row_zero_grad(void)
{
    struct qe_net net;
    qe_net_setup(&net, 4, 3, 2, 2);
    net.pairwise = 1;
    float x[4] = { 1, 2, 3, 4 };
    double y[2] = { NAN, NAN };
    size_t row = 0;
    float *theta = malloc(net.n_params * 4), *grad = malloc(net.n_params * 4);
    float *work = malloc(qe_net_work_floats(&net) * 4);
    qe_net_init(&net, theta, 1, NULL);
    double b = 0, p = 0;
    qe_net_chunk(&net, theta, (struct qe_src){ x, y }, &row, 1, 1, 0, 1, 1, grad, work, &b, &p, NULL);
    int allzero = 1;
    for (size_t k = 0; k < net.n_params; k++)
        allzero &= grad[k] == 0;
    CHECK(allzero);
    CHECK(b == 0 && p == 0);
    free(theta), free(grad), free(work);
}

/* qe_dot equals, bit for bit, a scalar rendering of its documented order of
 * operations: whichever clone (AVX2 or SSE2) runs, the result is the same. */
static void test_dot_matches_scalar_order(void)
{
    float a[200], b[200];
    for (int i = 0; i < 200; i++) {
        a[i] = (float)nrand();
        b[i] = (float)(nrand() * 100);
    }
    int same = 1;
    for (size_t n = 0; n <= 200; n++) {
        float s[4][8] = { { 0 } }, t = 0;
        size_t i = 0;
        for (; i + 32 <= n; i += 32)
            for (int c = 0; c < 4; c++)
                for (int k = 0; k < 8; k++)
                    s[c][k] += a[i + 8 * c + k] * b[i + 8 * c + k];
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++)
                s[0][k] += a[i + k] * b[i + k];
        for (; i < n; i++)
            t += a[i] * b[i];
        float v[8];
        for (int k = 0; k < 8; k++)
            v[k] = (s[0][k] + s[1][k]) + (s[2][k] + s[3][k]);
        float ref = (((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))) + t;
        float got = qe_dot(a, b, n);
        if (memcmp(&ref, &got, sizeof ref) != 0) {
            same = 0;
            fprintf(stderr, "n=%zu: %.9g vs %.9g\n", n, ref, got);
        }
    }
    CHECK(same);
}

/* --- synthetic data: labels from a logistic model of x --- */

struct synth {
    size_t n, d, m;
    float *x;
    double *y, *truth; /* labels (with NaNs) and the true probabilities */
};

static double true_w[16][32], true_b[16];

static void synth_truth(size_t d, size_t m, uint64_t seed)
{
    uint64_t keep = rng_state;
    rng_state = seed;
    for (size_t j = 0; j < m; j++) {
        for (size_t i = 0; i < d; i++)
            true_w[j][i] = nrand() * 0.6 / sqrt((double)d) * 3;
        true_b[j] = nrand() * 0.5;
    }
    rng_state = keep;
}

static struct synth synth_make(size_t n, size_t d, size_t m, size_t col0, double missing, uint64_t seed)
{
    struct synth s = { n, d, m, malloc(n * d * sizeof(float)), malloc(n * m * sizeof(double)),
                       malloc(n * m * sizeof(double)) };
    uint64_t keep = rng_state;
    rng_state = seed;
    for (size_t r = 0; r < n; r++) {
        double xr[32];
        for (size_t i = 0; i < d; i++) {
            xr[i] = nrand();
            s.x[r * d + i] = (float)(3 * xr[i] + 10); /* off-centre, scaled: standardisation matters */
        }
        for (size_t j = 0; j < m; j++) {
            double t = true_b[col0 + j];
            for (size_t i = 0; i < d; i++)
                t += true_w[col0 + j][i] * xr[i];
            double p = qe_sigmoid(t);
            s.truth[r * m + j] = p;
            s.y[r * m + j] = urand() < missing ? NAN : p;
        }
    }
    rng_state = keep;
    return s;
}

static void synth_free(struct synth *s)
{
    free(s->x), free(s->y), free(s->truth);
}

static struct ipr_qe_data as_data(const struct synth *s)
{
    return (struct ipr_qe_data){ s->n, s->d, s->m, s->x, s->y };
}

static void small_config(struct ipr_qe_config *cfg)
{
    ipr_qe_config_default(cfg);
    cfg->hidden = 24;
    cfg->adapter_hidden = 8;
    cfg->max_epochs = 60;
    cfg->batch = 64;
    cfg->patience = 8;
    cfg->lr = 3e-3;
    cfg->dropout = 0;
    cfg->threads = 2;
}

static double mae_on(const struct ipr_qe *qe, const struct synth *s, size_t col, size_t tcol)
{
    float *scratch = malloc(ipr_qe_scratch_floats(qe) * sizeof *scratch);
    double out[16], e = 0;
    for (size_t r = 0; r < s->n; r++) {
        ipr_qe_predict(qe, s->x + r * s->d, scratch, out);
        e += fabs(out[col] - s->truth[r * s->m + tcol]);
    }
    free(scratch);
    return e / (double)s->n;
}

static void test_recovers_logistic(void)
{
    synth_truth(10, 5, 777);
    struct synth tr = synth_make(2000, 10, 4, 0, 0.2, 1), te = synth_make(500, 10, 4, 0, 0, 2);
    struct ipr_qe_config cfg;
    small_config(&cfg);
    cfg.pairwise_weight = 0.2;
    struct ipr_qe_data dtr = as_data(&tr);
    struct ipr_qe *qe = NULL;
    struct ipr_qe_report rep;
    int rc = ipr_qe_train(&cfg, &dtr, NULL, &qe, &rep);
    CHECK_EQ_INT(rc, IPR_OK);
    if (rc) {
        fprintf(stderr, "%s\n", ipr_error_message());
        return;
    }
    CHECK_EQ_INT(ipr_qe_n_models(qe), 4);
    CHECK_EQ_INT(ipr_qe_dim(qe), 10);
    CHECK(rep.epochs >= rep.best_epoch && rep.best_epoch >= 1);
    CHECK(rep.val_mae < 0.06);
    for (size_t j = 0; j < 4; j++) {
        double e = mae_on(qe, &te, j, j);
        CHECK_MSG(e < 0.06, "model %zu test MAE %.4f", j, e);
    }
    ipr_qe_free(qe);
    synth_free(&tr), synth_free(&te);
}

static int train_bytes(const struct ipr_qe_config *cfg, const struct ipr_qe_data *tr, uint8_t **buf, size_t *len)
{
    struct ipr_qe *qe = NULL;
    int rc = ipr_qe_train(cfg, tr, NULL, &qe, NULL);
    if (rc)
        return rc;
    rc = ipr_qe_save(qe, buf, len);
    ipr_qe_free(qe);
    return rc;
}

static void test_determinism_seed_and_threads(void)
{
    synth_truth(10, 5, 777);
    struct synth tr = synth_make(700, 10, 3, 0, 0.3, 3);
    struct ipr_qe_config cfg;
    small_config(&cfg);
    cfg.max_epochs = 6;
    cfg.batch = 100; /* several chunks per batch, the last one partial */
    cfg.dropout = 0.2;
    cfg.pairwise_weight = 0.5;
    cfg.eval_every = 250; /* validation checks inside epochs too */
    struct ipr_qe_data d = as_data(&tr);
    uint8_t *a = NULL, *b = NULL, *c = NULL, *e = NULL;
    size_t la = 0, lb = 0, lc = 0, le = 0;
    cfg.threads = 1;
    CHECK_EQ_INT(train_bytes(&cfg, &d, &a, &la), IPR_OK);
    cfg.threads = 2;
    CHECK_EQ_INT(train_bytes(&cfg, &d, &b, &lb), IPR_OK);
    cfg.threads = 3;
    CHECK_EQ_INT(train_bytes(&cfg, &d, &c, &lc), IPR_OK);
    CHECK(la == lb && la == lc && la > 0);
    CHECK(a && b && c && memcmp(a, b, la) == 0 && memcmp(a, c, la) == 0);
    cfg.seed = 43;
    CHECK_EQ_INT(train_bytes(&cfg, &d, &e, &le), IPR_OK);
    CHECK(e && (le != la || memcmp(a, e, la) != 0));
    free(a), free(b), free(c), free(e);
    synth_free(&tr);
}

static void test_masked_labels_ignored(void)
{
    /* NaN labels with different payloads and signs train identical bytes */
    synth_truth(10, 5, 777);
    struct synth tr = synth_make(300, 10, 3, 0, 0.3, 4);
    struct ipr_qe_config cfg;
    small_config(&cfg);
    cfg.max_epochs = 4;
    struct ipr_qe_data d = as_data(&tr);
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    CHECK_EQ_INT(train_bytes(&cfg, &d, &a, &la), IPR_OK);
    for (size_t i = 0; i < tr.n * tr.m; i++)
        if (isnan(tr.y[i]))
            tr.y[i] = (i & 1) ? -NAN : nan("0x5a5a");
    CHECK_EQ_INT(train_bytes(&cfg, &d, &b, &lb), IPR_OK);
    CHECK(la == lb && a && b && memcmp(a, b, la) == 0);
    free(a), free(b);
    synth_free(&tr);
}

static void test_add_adapter_prefix_unchanged(void)
{
    synth_truth(10, 5, 777);
    /* the new model resembles the known ones, as a new LLM does */
    for (size_t i = 0; i < 10; i++)
        true_w[4][i] = 0.7 * true_w[0][i] - 0.5 * true_w[2][i];
    struct synth tr = synth_make(2000, 10, 4, 0, 0.1, 5);
    struct synth nw = synth_make(800, 10, 1, 4, 0.0, 6), te = synth_make(400, 10, 1, 4, 0, 7);
    struct ipr_qe_config cfg;
    small_config(&cfg);
    struct ipr_qe_data d = as_data(&tr), dn = as_data(&nw);
    struct ipr_qe *qe = NULL;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_OK);
    if (!qe)
        return;
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    CHECK_EQ_INT(ipr_qe_save(qe, &a, &la), IPR_OK);
    struct ipr_qe_report rep;
    cfg.adapter_hidden = 4;
    int rc = ipr_qe_add_adapter(qe, &cfg, &dn, NULL, &rep);
    CHECK_EQ_INT(rc, IPR_OK);
    if (rc)
        fprintf(stderr, "%s\n", ipr_error_message());
    CHECK_EQ_INT(ipr_qe_n_models(qe), 5);
    /* the default shared calibration: one scaling for all, reused by the new model */
    CHECK_EQ_INT(cfg.calibration, IPR_QE_CALIB_SHARED);
    for (size_t j = 1; j < 5; j++)
        CHECK(qe->ad[j].calib == qe->ad[0].calib && qe->ad[j].ca == qe->ad[0].ca && qe->ad[j].cb == qe->ad[0].cb);
    CHECK_EQ_INT(ipr_qe_save(qe, &b, &lb), IPR_OK);
    /* everything but the 32-byte END part is a prefix of the new blob */
    CHECK(lb > la && a && b && memcmp(a, b, la - 32) == 0);
    CHECK(a && b && memcmp(a + la - 32, "END", 4) == 0 && memcmp(b + lb - 32, "END", 4) == 0);
    double e = mae_on(qe, &te, 4, 0);
    CHECK_MSG(e < 0.06, "new adapter test MAE %.4f", e);
    /* the loaded extended blob predicts the same */
    struct ipr_qe *q2 = NULL;
    CHECK_EQ_INT(ipr_qe_load(b, lb, &q2), IPR_OK);
    if (q2) {
        float *s1 = malloc(ipr_qe_scratch_floats(qe) * 4), *s2 = malloc(ipr_qe_scratch_floats(q2) * 4);
        double o1[8], o2[8];
        ipr_qe_predict(qe, te.x, s1, o1);
        ipr_qe_predict(q2, te.x, s2, o2);
        CHECK(memcmp(o1, o2, 5 * sizeof(double)) == 0);
        free(s1), free(s2);
        ipr_qe_free(q2);
    }
    /* bad calls */
    struct ipr_qe_data wrong = d; /* m = 4 */
    CHECK_EQ_INT(ipr_qe_add_adapter(qe, &cfg, &wrong, NULL, NULL), IPR_ERR_INVAL);
    CHECK_EQ_INT(ipr_qe_n_models(qe), 5);
    free(a), free(b);
    ipr_qe_free(qe);
    synth_free(&tr), synth_free(&nw), synth_free(&te);
}

static double bce_of(const struct qe_adapter *a, const float *z, const double *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double p = qe_calibrate(a, z[i]);
        p = p < 1e-12 ? 1e-12 : p > 1 - 1e-12 ? 1 - 1e-12 : p;
        s -= y[i] * log(p) + (1 - y[i]) * log(1 - p);
    }
    return s / (double)n;
}

static void test_calibration_fixes_miscalibration(void)
{
    enum { N = 2000 };
    static float z[N], zt[N];
    static double y[N], yt[N];
    /* logits 3x too confident and shifted; labels drawn from the true probability */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < N; i++) {
            double t = 1.5 * nrand();
            float *zz = pass ? zt : z;
            double *yy = pass ? yt : y;
            zz[i] = (float)(3 * t + 1);
            yy[i] = urand() < qe_sigmoid(t) ? 1 : 0;
        }
    struct qe_adapter a;
    memset(&a, 0, sizeof a);
    double before = bce_of(&a, zt, yt, N);
    CHECK_EQ_INT(qe_fit_calibration(&a, z, y, N, IPR_QE_CALIB_AUTO), IPR_OK);
    CHECK(a.calib != QE_CALIB_NONE);
    double after = bce_of(&a, zt, yt, N);
    CHECK_MSG(after < before - 0.05, "held-out BCE %.4f -> %.4f", before, after);
    /* a step function of z: isotonic is the right family */
    for (size_t i = 0; i < N; i++) {
        z[i] = (float)(4 * urand() - 2);
        y[i] = urand() < (z[i] > 0.5f ? 0.9 : 0.1) ? 1 : 0;
    }
    CHECK_EQ_INT(qe_fit_calibration(&a, z, y, N, IPR_QE_CALIB_AUTO), IPR_OK);
    CHECK_EQ_INT(a.calib, QE_CALIB_ISOTONIC);
    CHECK(a.nk >= 2);
    CHECK_NEAR(qe_calibrate(&a, 1.5), 0.9, 0.05);
    CHECK_NEAR(qe_calibrate(&a, -1.5), 0.1, 0.05);
    /* too few rows: identity */
    CHECK_EQ_INT(qe_fit_calibration(&a, z, y, 5, IPR_QE_CALIB_AUTO), IPR_OK);
    CHECK_EQ_INT(a.calib, QE_CALIB_NONE);
    qe_adapter_clear(&a);
}

static struct ipr_qe *small_model(uint8_t **buf, size_t *len)
{
    synth_truth(10, 5, 777);
    struct synth tr = synth_make(400, 10, 3, 0, 0.2, 8);
    struct ipr_qe_config cfg;
    small_config(&cfg);
    cfg.max_epochs = 5;
    cfg.hidden = 6;
    cfg.adapter_hidden = 3;
    struct ipr_qe_data d = as_data(&tr);
    struct ipr_qe *qe = NULL;
    ipr_qe_train(&cfg, &d, NULL, &qe, NULL);
    synth_free(&tr);
    if (qe && buf)
        ipr_qe_save(qe, buf, len);
    return qe;
}

static void test_save_load_roundtrip(void)
{
    uint8_t *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    struct ipr_qe *qe = small_model(&buf, &len);
    CHECK(qe && buf);
    if (!qe || !buf)
        return;
    CHECK(memcmp(buf, "IPRQE", 5) == 0);
    struct ipr_qe *q2 = NULL;
    CHECK_EQ_INT(ipr_qe_load(buf, len, &q2), IPR_OK);
    if (!q2)
        return;
    CHECK_EQ_INT(ipr_qe_save(q2, &buf2, &len2), IPR_OK);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
    float *s1 = malloc(ipr_qe_scratch_floats(qe) * 4), *s2 = malloc(ipr_qe_scratch_floats(q2) * 4);
    float x[10];
    int same = 1;
    for (int t = 0; t < 50; t++) {
        double o1[3], o2[3];
        for (int i = 0; i < 10; i++)
            x[i] = (float)(3 * nrand() + 10);
        ipr_qe_predict(qe, x, s1, o1);
        ipr_qe_predict(q2, x, s2, o2);
        same &= memcmp(o1, o2, sizeof o1) == 0;
        for (int j = 0; j < 3; j++)
            same &= o1[j] >= 0 && o1[j] <= 1;
    }
    CHECK(same);
    free(s1), free(s2), free(buf), free(buf2);
    ipr_qe_free(qe), ipr_qe_free(q2);
}

static void test_truncated_and_corrupt_blobs(void)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    struct ipr_qe *qe = small_model(&buf, &len);
    if (!qe || !buf) {
        CHECK(0);
        return;
    }
    struct ipr_qe *q2 = NULL;
    int all = 1;
    for (size_t l = 0; l < len; l++) { /* every proper prefix */
        int rc = ipr_qe_load(buf, l, &q2);
        all &= rc == IPR_ERR_FORMAT && q2 == NULL;
        if (rc == IPR_OK) {
            fprintf(stderr, "prefix of %zu bytes accepted\n", l);
            ipr_qe_free(q2);
        }
    }
    CHECK(all);
    uint8_t *c = malloc(len);
    all = 1;
    for (size_t i = 0; i < len; i++) { /* every single-byte flip */
        memcpy(c, buf, len);
        c[i] ^= (uint8_t)(1u << (i % 8));
        int rc = ipr_qe_load(c, len, &q2);
        if (rc == IPR_OK) {
            all = 0;
            fprintf(stderr, "flip at byte %zu accepted\n", i);
            ipr_qe_free(q2);
        }
    }
    CHECK(all);
    memcpy(c, buf, len);
    c[8] = 2; /* version 2 */
    CHECK_EQ_INT(ipr_qe_load(c, len, &q2), IPR_ERR_VERSION);
    CHECK(strstr(ipr_error_message(), "version") != NULL);
    /* garbage after a valid magic and version never crashes */
    for (int t = 0; t < 300; t++) {
        memcpy(c, buf, 16);
        for (size_t i = 16; i < len; i++)
            c[i] = (uint8_t)(qe_splitmix(&rng_state) & 0xff);
        if (t % 3 == 0)
            memcpy(c + 16, buf + 16, 16); /* a real part header, random payload */
        CHECK(ipr_qe_load(c, len - (size_t)t % 50, &q2) != IPR_OK);
    }
    /* trailing junk */
    uint8_t *big = malloc(len + 7);
    memcpy(big, buf, len);
    memset(big + len, 0, 7);
    CHECK_EQ_INT(ipr_qe_load(big, len + 7, &q2), IPR_ERR_FORMAT);
    CHECK_EQ_INT(ipr_qe_load(NULL, 0, &q2), IPR_ERR_FORMAT);
    free(big), free(c), free(buf);
    ipr_qe_free(qe);
}

static void test_nonfinite_inputs(void)
{
    struct ipr_qe *qe = small_model(NULL, NULL);
    if (!qe) {
        CHECK(0);
        return;
    }
    float *s = malloc(ipr_qe_scratch_floats(qe) * 4);
    float x[10];
    double out[3];
    for (int i = 0; i < 10; i++)
        x[i] = 10;
    x[3] = NAN;
    ipr_qe_predict(qe, x, s, out);
    CHECK(isnan(out[0]) && isnan(out[1]) && isnan(out[2]));
    x[3] = INFINITY;
    ipr_qe_predict(qe, x, s, out);
    CHECK(isnan(out[0]) && isnan(out[2]));
    x[3] = 1e30f; /* huge but finite: a number in [0,1] */
    ipr_qe_predict(qe, x, s, out);
    CHECK(out[0] >= 0 && out[0] <= 1);
    free(s);
    ipr_qe_free(qe);

    /* training skips rows with non-finite embeddings; rejects bad labels */
    synth_truth(10, 5, 777);
    struct synth tr = synth_make(300, 10, 2, 0, 0.1, 9);
    tr.x[5 * 10 + 2] = NAN;
    tr.x[7 * 10 + 0] = -INFINITY;
    struct ipr_qe_config cfg;
    small_config(&cfg);
    cfg.max_epochs = 3;
    struct ipr_qe_data d = as_data(&tr);
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_OK);
    ipr_qe_free(qe);
    tr.y[11] = 1.5;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_ERR_INVAL);
    CHECK(qe == NULL);
    tr.y[11] = INFINITY;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_ERR_INVAL);
    tr.y[11] = 0.5;
    cfg.dropout = 1.0;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_ERR_INVAL);
    small_config(&cfg);
    for (size_t i = 0; i < tr.n * tr.m; i++)
        tr.y[i] = NAN;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_ERR_INVAL);
    synth_free(&tr);
}

static void test_explicit_validation_sets(void)
{
    synth_truth(10, 5, 777);
    struct synth tr = synth_make(1500, 10, 3, 0, 0.2, 21), va = synth_make(300, 10, 3, 0, 0.2, 22);
    struct synth n1 = synth_make(600, 10, 1, 3, 0.0, 23), n1v = synth_make(150, 10, 1, 3, 0.0, 24);
    struct synth te = synth_make(300, 10, 3, 0, 0, 25);
    struct ipr_qe_config cfg;
    small_config(&cfg);
    struct ipr_qe_data dtr = as_data(&tr), dva = as_data(&va), dn = as_data(&n1), dnv = as_data(&n1v);
    struct ipr_qe *qe = NULL;
    struct ipr_qe_report rep;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &dtr, &dva, &qe, &rep), IPR_OK);
    if (!qe)
        return;
    CHECK(rep.val_mae < 0.07 && rep.best_epoch >= 1);
    for (size_t j = 0; j < 3; j++)
        CHECK(mae_on(qe, &te, j, j) < 0.07);
    CHECK_EQ_INT(ipr_qe_add_adapter(qe, &cfg, &dn, &dnv, &rep), IPR_OK);
    CHECK_EQ_INT(ipr_qe_n_models(qe), 4);
    CHECK(isfinite(rep.val_loss) && rep.epochs >= 1);
    /* shape mismatches */
    struct ipr_qe *q2 = NULL;
    struct ipr_qe_data bad = dva;
    bad.d = 9;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &dtr, &bad, &q2, NULL), IPR_ERR_INVAL);
    CHECK(q2 == NULL);
    bad = dnv;
    bad.d = 9;
    CHECK_EQ_INT(ipr_qe_add_adapter(qe, &cfg, &dn, &bad, NULL), IPR_ERR_INVAL);
    CHECK_EQ_INT(ipr_qe_n_models(qe), 4);
    ipr_qe_free(qe);
    synth_free(&tr), synth_free(&va), synth_free(&n1), synth_free(&n1v), synth_free(&te);
}

/* For tests/test_qe_reference.sh: with QE_DUMP_DIR set, writes estimators of
 * several shapes and calibrations (NAME.qe), 64 inputs (NAME.x, float32) and
 * the C predictions (NAME.p, float64) for the numpy reader to recompute. */
static void dump_one(const char *dir, const char *name, int hidden, int ah, int calib, size_t m)
{
    synth_truth(10, 5, 31);
    struct synth tr = synth_make(600, 10, m, 0, 0.2, 32), te = synth_make(64, 10, m, 0, 0, 33);
    for (size_t i = 0; i < tr.n * tr.m; i++) /* 0/1 labels make isotonic steps likely */
        if (!isnan(tr.y[i]) && (i % 3))
            tr.y[i] = tr.y[i] > 0.5;
    struct ipr_qe_config cfg;
    small_config(&cfg);
    cfg.hidden = hidden;
    cfg.adapter_hidden = ah;
    cfg.calibration = calib;
    cfg.max_epochs = 8;
    struct ipr_qe_data d = as_data(&tr);
    struct ipr_qe *qe = NULL;
    CHECK_EQ_INT(ipr_qe_train(&cfg, &d, NULL, &qe, NULL), IPR_OK);
    if (!qe)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ipr_qe_save(qe, &buf, &len), IPR_OK);
    char path[1024];
    float *scr = malloc(ipr_qe_scratch_floats(qe) * sizeof *scr);
    double *p = malloc(te.n * m * sizeof *p);
    for (size_t r = 0; r < te.n; r++)
        ipr_qe_predict(qe, te.x + r * te.d, scr, p + r * m);
    const void *data[3] = { buf, te.x, p };
    size_t sizes[3] = { len, te.n * te.d * sizeof(float), te.n * m * sizeof(double) };
    const char *ext[3] = { "qe", "x", "p" };
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext[k]);
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (f) {
            CHECK(fwrite(data[k], 1, sizes[k], f) == sizes[k]);
            fclose(f);
        }
    }
    free(scr), free(p), free(buf);
    ipr_qe_free(qe);
    synth_free(&tr), synth_free(&te);
}

static void test_dump_for_reference(void)
{
    const char *dir = getenv("QE_DUMP_DIR");
    if (!dir)
        return;
    dump_one(dir, "mlp_shared", 12, 5, IPR_QE_CALIB_SHARED, 4);
    dump_one(dir, "mlp_auto", 12, 5, IPR_QE_CALIB_AUTO, 4);
    dump_one(dir, "mlp_isotonic", 8, 3, IPR_QE_CALIB_ISOTONIC, 3);
    dump_one(dir, "linear_platt", 9, 0, IPR_QE_CALIB_PLATT, 3);
    dump_one(dir, "notrunk_off", 0, 4, IPR_QE_CALIB_OFF, 2);
}

TEST_MAIN(test_dot_matches_scalar_order, test_gradcheck_trunk_mlp_adapters, test_gradcheck_pairwise, test_gradcheck_dropout,
          test_gradcheck_linear_and_no_trunk, test_masked_row_zero_grad, test_recovers_logistic,
          test_determinism_seed_and_threads, test_masked_labels_ignored, test_add_adapter_prefix_unchanged,
          test_calibration_fixes_miscalibration, test_save_load_roundtrip, test_truncated_and_corrupt_blobs,
          test_nonfinite_inputs, test_explicit_validation_sets, test_dump_for_reference)
