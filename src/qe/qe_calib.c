/*
 * qe_calib.c — post-hoc calibration of one adapter's logits on validation
 * data. Three candidates: none (sigmoid of the logit), Platt scaling
 * (sigmoid(a z + b), fitted by Newton's method with a small ridge towards the
 * identity) and isotonic regression (pool-adjacent-violators, interpolated
 * linearly between block centres). The choice is made by 2-fold cross-fitted
 * cross-entropy (fit on the even rows, score on the odd ones and vice versa),
 * so the flexible isotonic fit is not favoured merely for fitting its own
 * data; the winner is then refitted on all the validation rows.
 */
#include "qe_internal.h"
#include "ipr/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CALIB 20        /* fewer labelled validation rows: no calibration */
#define PLATT_RIDGE 1e-2
#define ISO_CLAMP 5e-3      /* isotonic probabilities stay in [c, 1-c] */

static double bce_p(double p, double y)
{
    if (p < 1e-12)
        p = 1e-12;
    if (p > 1 - 1e-12)
        p = 1 - 1e-12;
    return -(y * log(p) + (1 - y) * log(1 - p));
}

static double platt_obj(const float *z, const double *y, const size_t *idx, size_t n, double a, double b)
{
    double s = PLATT_RIDGE * ((a - 1) * (a - 1) + b * b);
    for (size_t i = 0; i < n; i++) {
        double t = a * z[idx[i]] + b;
        s += qe_softplus(t) - y[idx[i]] * t;
    }
    return s;
}

static void platt_fit(const float *z, const double *y, const size_t *idx, size_t n, double *pa, double *pb)
{
    double a = 1, b = 0, f = platt_obj(z, y, idx, n, a, b);
    for (int it = 0; it < 100; it++) {
        double ga = 2 * PLATT_RIDGE * (a - 1), gb = 2 * PLATT_RIDGE * b;
        double haa = 2 * PLATT_RIDGE, hab = 0, hbb = 2 * PLATT_RIDGE;
        for (size_t i = 0; i < n; i++) {
            double zi = z[idx[i]], p = qe_sigmoid(a * zi + b), r = p - y[idx[i]], w = p * (1 - p);
            ga += r * zi;
            gb += r;
            haa += w * zi * zi;
            hab += w * zi;
            hbb += w;
        }
        double det = haa * hbb - hab * hab;
        if (!(det > 0))
            break;
        double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
        double t = 1, fn = f;
        for (int ls = 0; ls < 30; ls++, t *= 0.5) {
            fn = platt_obj(z, y, idx, n, a - t * da, b - t * db);
            if (fn <= f)
                break;
        }
        if (!(fn <= f))
            break;
        a -= t * da;
        b -= t * db;
        double gain = f - fn;
        f = fn;
        if (gain < 1e-12 * (1 + fabs(f)))
            break;
    }
    *pa = a;
    *pb = b;
}

static int cmp_idx(const void *pa, const void *pb, void *arg)
{
    const float *sort_z = arg;
    size_t i = *(const size_t *)pa, j = *(const size_t *)pb;
    if (sort_z[i] < sort_z[j])
        return -1;
    if (sort_z[i] > sort_z[j])
        return 1;
    return i < j ? -1 : i > j;
}

/* PAV on the rows idx (any order); writes knots to kz/kp (capacity n). */
static size_t iso_fit(const float *z, const double *y, size_t *idx, size_t n, float *kz, float *kp,
                      double *sw, double *sy, double *sz)
{
    qsort_r(idx, n, sizeof *idx, cmp_idx, (void *)z);
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        sw[nb] = 1;
        sy[nb] = y[idx[i]];
        sz[nb] = z[idx[i]];
        nb++;
        while (nb > 1 && sy[nb - 2] / sw[nb - 2] >= sy[nb - 1] / sw[nb - 1]) {
            sw[nb - 2] += sw[nb - 1];
            sy[nb - 2] += sy[nb - 1];
            sz[nb - 2] += sz[nb - 1];
            nb--;
        }
    }
    /* knots at block centres; blocks with equal centres are merged */
    size_t k = 0;
    double kw = 0;
    for (size_t b = 0; b < nb; b++) {
        float c = (float)(sz[b] / sw[b]);
        double p = sy[b] / sw[b];
        if (k > 0 && c <= kz[k - 1]) {
            kp[k - 1] = (float)((kp[k - 1] * kw + p * sw[b]) / (kw + sw[b]));
            kw += sw[b];
            continue;
        }
        kz[k] = c;
        kp[k] = (float)p;
        kw = sw[b];
        k++;
    }
    for (size_t i = 0; i < k; i++)
        kp[i] = kp[i] < ISO_CLAMP ? (float)ISO_CLAMP : kp[i] > 1 - ISO_CLAMP ? (float)(1 - ISO_CLAMP) : kp[i];
    return k;
}

static double iso_eval(const float *kz, const float *kp, size_t nk, double z)
{
    if (nk == 0)
        return qe_sigmoid(z);
    if (!(z > kz[0]))
        return isnan(z) ? NAN : kp[0];
    if (z >= kz[nk - 1])
        return kp[nk - 1];
    size_t lo = 0, hi = nk - 1; /* kz[lo] < z < kz[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (kz[mid] <= z)
            lo = mid;
        else
            hi = mid;
    }
    double t = (z - kz[lo]) / ((double)kz[hi] - kz[lo]);
    return kp[lo] + t * ((double)kp[hi] - kp[lo]);
}

double qe_calibrate(const struct qe_adapter *a, double z)
{
    switch (a->calib) {
    case QE_CALIB_PLATT:
        return qe_sigmoid(a->ca * z + a->cb);
    case QE_CALIB_ISOTONIC:
        return iso_eval(a->kz, a->kp, a->nk, z);
    default:
        return qe_sigmoid(z);
    }
}

int qe_fit_calibration(struct qe_adapter *a, const float *z, const double *y, size_t n, int policy)
{
    a->calib = QE_CALIB_NONE;
    a->ca = 1;
    a->cb = 0;
    free(a->kz);
    free(a->kp);
    a->kz = a->kp = NULL;
    a->nk = 0;
    if (n < MIN_CALIB || policy == IPR_QE_CALIB_OFF)
        return IPR_OK;
    size_t *idx = malloc(n * sizeof *idx);
    float *kz = malloc(n * sizeof *kz), *kp = malloc(n * sizeof *kp);
    double *w = malloc(3 * n * sizeof *w);
    if (!idx || !kz || !kp || !w) {
        free(idx), free(kz), free(kp), free(w);
        return ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for calibration");
    }
    /* cross-fitted losses of none, Platt and isotonic */
    double loss[3] = { 0, 0, 0 };
    for (int fold = 0; fold < 2; fold++) {
        size_t nf = 0, ne = 0;
        for (size_t i = 0; i < n; i++)
            if ((i & 1) != (size_t)fold)
                idx[nf++] = i;
        size_t *ev = idx + nf;
        for (size_t i = 0; i < n; i++)
            if ((i & 1) == (size_t)fold)
                ev[ne++] = i;
        double pa, pb;
        platt_fit(z, y, idx, nf, &pa, &pb);
        size_t nk = iso_fit(z, y, idx, nf, kz, kp, w, w + n, w + 2 * n);
        for (size_t i = 0; i < ne; i++) {
            double zi = z[ev[i]], yi = y[ev[i]];
            loss[0] += bce_p(qe_sigmoid(zi), yi);
            loss[1] += bce_p(qe_sigmoid(pa * zi + pb), yi);
            loss[2] += bce_p(iso_eval(kz, kp, nk, zi), yi);
        }
    }
    int allowed[3] = { 1, 1, 1 };
    if (policy == IPR_QE_CALIB_PLATT)
        allowed[0] = allowed[2] = 0;
    else if (policy == IPR_QE_CALIB_ISOTONIC)
        allowed[0] = allowed[1] = 0;
    else if (policy == IPR_QE_CALIB_MONOTONE)
        allowed[2] = 0;
    int best = -1;
    for (int k = 0; k < 3; k++)
        if (allowed[k] && (best < 0 || loss[k] < loss[best]))
            best = k;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (best == QE_CALIB_PLATT) {
        platt_fit(z, y, idx, n, &a->ca, &a->cb);
        a->calib = QE_CALIB_PLATT;
    } else if (best == QE_CALIB_ISOTONIC) {
        size_t nk = iso_fit(z, y, idx, n, kz, kp, w, w + n, w + 2 * n);
        a->kz = malloc(nk * sizeof *a->kz);
        a->kp = malloc(nk * sizeof *a->kp);
        if (!a->kz || !a->kp) {
            free(a->kz), free(a->kp);
            a->kz = a->kp = NULL;
            free(idx), free(kz), free(kp), free(w);
            return ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for calibration");
        }
        memcpy(a->kz, kz, nk * sizeof *kz);
        memcpy(a->kp, kp, nk * sizeof *kp);
        a->nk = nk;
        a->calib = QE_CALIB_ISOTONIC;
    }
    free(idx), free(kz), free(kp), free(w);
    return IPR_OK;
}
