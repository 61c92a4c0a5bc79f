/*
 * qe_net.c — the estimator's arithmetic: forward and backward passes of the
 * trunk and the adapters over a chunk of rows, the masked cross-entropy and
 * pairwise ranking losses, initialisation, and the kernels shared with
 * prediction (qe_dot, qe_adapter_logit) so training and inference compute
 * bit-identical logits.
 *
 * Shapes (B = rows in the chunk, <= QE_CHUNK):
 *   xs (B,in) standardised input     hp (B,hidden) trunk pre-activation
 *   f  (B,feat) adapters' input      (ReLU(hp) or xs, times the dropout scale)
 *   ap (B,m,ah) adapter pre-act.     z, dz (B,m) logits and d loss / d z
 * Parameter vector: [W1 (hidden,in), b1 (hidden)] then per adapter
 *   [W (ah,feat), b (ah), w2 (ah), b2] or linear [w (feat), b].
 */
#include "qe_internal.h"

#include <math.h>
#include <string.h>

/* The hot kernels get an AVX2 clone picked at load time. Results are the
 * same bits either way: no FMA contraction (-std=c11 turns it off), and each
 * of the 32 partial sums (4 x 8) sees the same products in the same order whatever
 * the vector width; the final tree is fixed. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define QE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define QE_CLONES
#endif

typedef float v8f __attribute__((vector_size(32)));

/* Unaligned load of 8 floats (a macro: a function returning v8f would change
 * the ABI between the clones). */
#define LOAD8(p) __extension__({ v8f v_; memcpy(&v_, (p), sizeof v_); v_; })

QE_CLONES
float qe_dot(const float *a, const float *b, size_t n)
{
    v8f s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 += LOAD8(a + i) * LOAD8(b + i);
        s1 += LOAD8(a + i + 8) * LOAD8(b + i + 8);
        s2 += LOAD8(a + i + 16) * LOAD8(b + i + 16);
        s3 += LOAD8(a + i + 24) * LOAD8(b + i + 24);
    }
    for (; i + 8 <= n; i += 8)
        s0 += LOAD8(a + i) * LOAD8(b + i);
    float t = 0;
    for (; i < n; i++)
        t += a[i] * b[i];
    v8f s = (s0 + s1) + (s2 + s3);
    return (((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))) + t;
}

/* y += a * x, in blocks of 8 so that the vectoriser sees straight-line code */
QE_CLONES
static void axpy(float *restrict y, float a, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            y[i + k] += a * x[i + k];
    for (; i < n; i++)
        y[i] += a * x[i];
}

double qe_softplus(double z)
{
    return (z > 0 ? z : 0) + log1p(exp(-fabs(z)));
}

double qe_sigmoid(double z)
{
    if (z >= 0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

uint64_t qe_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

size_t qe_adapter_nparams(size_t in, size_t ah)
{
    return ah ? ah * in + ah + ah + 1 : in + 1;
}

float qe_adapter_logit(const struct qe_adapter *a, const float *f, float *tmp)
{
    const size_t in = a->in, ah = a->ah;
    if (!ah)
        return qe_dot(a->w, f, in) + a->w[in];
    const float *W = a->w, *b = W + ah * in, *w2 = b + ah, *b2 = w2 + ah;
    for (size_t u = 0; u < ah; u++) {
        float v = qe_dot(W + u * in, f, in) + b[u];
        tmp[u] = v > 0 ? v : 0;
    }
    return qe_dot(w2, tmp, ah) + b2[0];
}

void qe_net_setup(struct qe_net *net, size_t in, size_t hidden, size_t m, size_t ah)
{
    memset(net, 0, sizeof *net);
    net->in = in;
    net->hidden = hidden;
    net->m = m;
    net->ah = ah;
    net->feat = hidden ? hidden : in;
    net->n_trunk = hidden ? hidden * in + hidden : 0;
    net->n_adapter = qe_adapter_nparams(net->feat, ah);
    net->n_params = net->n_trunk + m * net->n_adapter;
}

size_t qe_net_work_floats(const struct qe_net *net)
{
    const size_t B = QE_CHUNK;
    return B * (net->in + net->hidden + 3 * net->feat + net->m * net->ah + 2 * net->m)
           + net->ah + 16;
}

void qe_row_counts(const double *y, size_t m, size_t *lab, size_t *pairs)
{
    size_t l = 0, p = 0;
    for (size_t j = 0; j < m; j++) {
        if (isnan(y[j]))
            continue;
        l++;
        for (size_t k = j + 1; k < m; k++)
            if (!isnan(y[k]) && y[k] != y[j])
                p++;
    }
    *lab = l;
    *pairs = p;
}

/* Dropout keep-scale for (row, unit) at a training step: 0 or 1/(1-p). */
static void dropout_row(float *scale, size_t n, float p, uint64_t seed, uint64_t step, size_t row)
{
    uint64_t st = seed ^ (0xd1b54a32d192ed03ull * (step + 1)) ^ (0x8cb92ba72f3d8dd7ull * ((uint64_t)row + 1));
    const float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        double u = (double)(qe_splitmix(&st) >> 11) * 0x1.0p-53;
        scale[i] = u < (double)p ? 0.0f : keep;
    }
}

void qe_net_chunk(const struct qe_net *net, const float *theta, struct qe_src src,
                  const size_t *rows, size_t B, int train, uint64_t step,
                  double inv_lab, double inv_pairs, float *grad, float *work,
                  double *bce_out, double *pair_out, float *zout)
{
    const size_t in = net->in, H = net->hidden, F = net->feat, m = net->m, ah = net->ah;
    const size_t C = QE_CHUNK;
    float *xs = work;             /* (C,in) */
    float *hp = xs + C * in;      /* (C,H) */
    float *f = hp + C * H;        /* (C,F) */
    float *fs = f + C * F;        /* (C,F) dropout scale */
    float *df = fs + C * F;       /* (C,F) */
    float *ap = df + C * F;       /* (C,m,ah) */
    float *z = ap + C * m * ah;   /* (C,m) */
    float *dz = z + C * m;        /* (C,m) */
    float *tmp = dz + C * m;      /* (ah) */
    const int drop = train && net->dropout > 0;

    for (size_t b = 0; b < B; b++) {
        const float *x = src.x + rows[b] * in;
        float *o = xs + b * in;
        if (net->mean)
            for (size_t i = 0; i < in; i++)
                o[i] = (x[i] - net->mean[i]) * net->scale[i];
        else
            memcpy(o, x, in * sizeof *o);
        if (drop)
            dropout_row(fs + b * F, F, net->dropout, net->seed, step, rows[b]);
    }
    /* trunk: f = ReLU(W1 xs + b1) */
    if (H) {
        const float *W1 = theta, *b1 = theta + H * in;
        for (size_t h = 0; h < H; h++)
            for (size_t b = 0; b < B; b++) {
                float v = qe_dot(W1 + h * in, xs + b * in, in) + b1[h];
                hp[b * H + h] = v;
                f[b * F + h] = v > 0 ? v : 0;
            }
    } else {
        memcpy(f, xs, B * in * sizeof *f);
    }
    if (drop)
        for (size_t i = 0; i < B * F; i++)
            f[i] *= fs[i];
    /* adapters */
    for (size_t j = 0; j < m; j++) {
        const float *P = theta + net->n_trunk + j * net->n_adapter;
        for (size_t b = 0; b < B; b++) {
            const float *fb = f + b * F;
            if (!ah) {
                z[b * m + j] = qe_dot(P, fb, F) + P[F];
                continue;
            }
            const float *W = P, *bb = W + ah * F, *w2 = bb + ah, *b2 = w2 + ah;
            float *a = ap + (b * m + j) * ah;
            for (size_t u = 0; u < ah; u++) {
                a[u] = qe_dot(W + u * F, fb, F) + bb[u];
                tmp[u] = a[u] > 0 ? a[u] : 0;
            }
            z[b * m + j] = qe_dot(w2, tmp, ah) + b2[0];
        }
    }
    if (zout)
        memcpy(zout, z, B * m * sizeof *z);
    /* losses and dz */
    double bce = 0, pair = 0;
    const double pw = net->pairwise;
    for (size_t b = 0; b < B; b++) {
        const double *y = src.y + rows[b] * m;
        const float *zb = z + b * m;
        float *dzb = dz + b * m;
        for (size_t j = 0; j < m; j++) {
            dzb[j] = 0;
            if (isnan(y[j]))
                continue;
            bce += qe_softplus(zb[j]) - y[j] * zb[j];
            dzb[j] = (float)((qe_sigmoid(zb[j]) - y[j]) * inv_lab);
        }
        if (pw <= 0)
            continue;
        for (size_t j = 0; j < m; j++) {
            if (isnan(y[j]))
                continue;
            for (size_t k = j + 1; k < m; k++) {
                if (isnan(y[k]) || y[k] == y[j])
                    continue;
                /* the better-labelled model should get the larger logit */
                double s = y[j] > y[k] ? 1.0 : -1.0, w = fabs(y[j] - y[k]);
                double diff = s * ((double)zb[j] - (double)zb[k]);
                pair += w * qe_softplus(-diff);
                double g = -w * qe_sigmoid(-diff) * pw * inv_pairs * s;
                dzb[j] += (float)g;
                dzb[k] -= (float)g;
            }
        }
    }
    *bce_out += bce;
    *pair_out += pair;
    if (!grad)
        return;

    /* backward */
    memset(grad, 0, net->n_params * sizeof *grad);
    memset(df, 0, B * F * sizeof *df);
    for (size_t j = 0; j < m; j++) {
        const float *P = theta + net->n_trunk + j * net->n_adapter;
        float *G = grad + net->n_trunk + j * net->n_adapter;
        for (size_t b = 0; b < B; b++) {
            const float d = dz[b * m + j];
            if (d == 0)
                continue;
            const float *fb = f + b * F;
            float *dfb = df + b * F;
            if (!ah) {
                axpy(G, d, fb, F);
                G[F] += d;
                axpy(dfb, d, P, F);
                continue;
            }
            const float *W = P, *w2 = W + ah * F + ah;
            float *gW = G, *gb = G + ah * F, *gw2 = gb + ah, *gb2 = gw2 + ah;
            const float *a = ap + (b * m + j) * ah;
            gb2[0] += d;
            for (size_t u = 0; u < ah; u++) {
                if (a[u] <= 0)
                    continue;
                gw2[u] += d * a[u];
                const float da = d * w2[u];
                axpy(gW + u * F, da, fb, F);
                gb[u] += da;
                axpy(dfb, da, W + u * F, F);
            }
        }
    }
    if (!H)
        return;
    /* through dropout and ReLU into the trunk */
    for (size_t b = 0; b < B; b++)
        for (size_t h = 0; h < H; h++) {
            float g = df[b * F + h];
            if (drop)
                g *= fs[b * F + h];
            df[b * F + h] = hp[b * H + h] > 0 ? g : 0;
        }
    float *gW1 = grad, *gb1 = grad + H * in;
    for (size_t h = 0; h < H; h++)
        for (size_t b = 0; b < B; b++) {
            const float g = df[b * F + h];
            if (g == 0)
                continue;
            axpy(gW1 + h * in, g, xs + b * in, in);
            gb1[h] += g;
        }
}

void qe_net_decay_mask(const struct qe_net *net, uint8_t *mask)
{
    const size_t in = net->in, H = net->hidden, F = net->feat, ah = net->ah;
    memset(mask, 0, net->n_params);
    if (H)
        memset(mask, 1, H * in);
    for (size_t j = 0; j < net->m; j++) {
        uint8_t *M = mask + net->n_trunk + j * net->n_adapter;
        if (ah) {
            memset(M, 1, ah * F);
            memset(M + ah * F + ah, 1, ah);
        } else {
            memset(M, 1, F);
        }
    }
}

static double normal(uint64_t *st)
{
    double u1 = ((double)(qe_splitmix(st) >> 11) + 0.5) * 0x1.0p-53;
    double u2 = (double)(qe_splitmix(st) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void fill(float *w, size_t n, double sd, uint64_t *st)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(sd * normal(st));
}

void qe_net_init(const struct qe_net *net, float *theta, uint64_t seed, const double *prior)
{
    const size_t in = net->in, H = net->hidden, F = net->feat, ah = net->ah;
    uint64_t st = seed ^ 0x5851f42d4c957f2dull;
    memset(theta, 0, net->n_params * sizeof *theta);
    if (H)
        fill(theta, H * in, sqrt(2.0 / (double)in), &st);
    for (size_t j = 0; j < net->m; j++) {
        float *P = theta + net->n_trunk + j * net->n_adapter;
        double p = prior ? prior[j] : 0.5;
        if (isnan(p))
            p = 0.5;
        p = p < 0.01 ? 0.01 : p > 0.99 ? 0.99 : p;
        float b0 = (float)log(p / (1 - p));
        if (ah) {
            fill(P, ah * F, sqrt(2.0 / (double)F), &st);
            fill(P + ah * F + ah, ah, 0.5 / sqrt((double)ah), &st);
            P[ah * F + 2 * ah] = b0;
        } else {
            fill(P, F, 0.5 / sqrt((double)F), &st);
            P[F] = b0;
        }
    }
}
