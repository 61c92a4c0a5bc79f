/*
 * metrics.c — the metrics of DESIGN.md §4 on plain arrays: reference models,
 * policy curves through the shared tau rule, ARQGC, savings at parity and at
 * PGR levels, and QE accuracy. The exact definitions (tie-breaks, the parity
 * epsilon, the envelope) are stated in include/ipr/eval.h; tests/eval_reference.py
 * is an independent numpy implementation of the same text.
 */
#include "ipr/eval.h"
#include "ipr/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ipr_eval_tau(size_t k)
{
    return (double)k / 100.0;
}

int ipr_eval_ref_compute(const double *q, const double *c, size_t n, size_t m,
                         struct ipr_eval_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    if (n == 0 || m == 0)
        return ipr_error_set(IPR_ERR_INVAL, "evaluation needs at least one prompt and one model");
    ref->m = m;
    ref->quality = calloc(m, sizeof *ref->quality);
    ref->cost = calloc(m, sizeof *ref->cost);
    if (!ref->quality || !ref->cost) {
        ipr_eval_ref_free(ref);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    for (size_t j = 0; j < m; j++) {
        double sq = 0, sc = 0;
        for (size_t i = 0; i < n; i++) {
            double v = q[i * m + j];
            sq += isnan(v) ? 0.0 : v;
            sc += c[i * m + j];
        }
        ref->quality[j] = sq / (double)n;
        ref->cost[j] = sc / (double)n;
        if (!isfinite(ref->cost[j])) {
            ipr_eval_ref_free(ref);
            return ipr_error_set(IPR_ERR_INVAL, "model %zu has a non-finite true cost", j);
        }
    }
    int s = 0, w = 0;
    for (size_t j = 1; j < m; j++) {
        const double *Q = ref->quality, *C = ref->cost;
        if (Q[j] > Q[s] || (Q[j] == Q[s] && C[j] < C[s]))
            s = (int)j;
        if (C[j] < C[w] || (C[j] == C[w] && Q[j] > Q[w]))
            w = (int)j;
    }
    ref->strongest = s;
    ref->cheapest = w;
    ref->q_s = ref->quality[s];
    ref->c_s = ref->cost[s];
    ref->q_w = ref->quality[w];
    ref->c_w = ref->cost[w];
    return IPR_OK;
}

void ipr_eval_ref_free(struct ipr_eval_ref *ref)
{
    if (!ref)
        return;
    free(ref->quality);
    free(ref->cost);
    ref->quality = ref->cost = NULL;
}

double ipr_eval_x(const struct ipr_eval_ref *ref, double cost)
{
    double den = ref->c_s - ref->c_w;
    return den > 0 ? (cost - ref->c_w) / den : NAN;
}

double ipr_eval_y(const struct ipr_eval_ref *ref, double quality)
{
    double den = ref->q_s - ref->q_w;
    return den > 0 ? (quality - ref->q_w) / den : NAN;
}

struct xy { double x, y; };

static int cmp_xy(const void *a, const void *b)
{
    const struct xy *p = a, *r = b;
    if (p->x != r->x)
        return p->x < r->x ? -1 : 1;
    if (p->y != r->y)
        return p->y < r->y ? -1 : 1;
    return 0;
}

static double clip01(double v)
{
    return v < 0.0 ? 0.0 : v > 1.0 ? 1.0 : v;
}

double ipr_eval_arqgc_xy(const double *x, const double *y, size_t k)
{
    struct xy *p = malloc((k + 2) * sizeof *p);
    if (!p)
        return NAN;
    size_t n = 0;
    p[n++] = (struct xy){ 0.0, 0.0 };
    p[n++] = (struct xy){ 1.0, 1.0 };
    for (size_t i = 0; i < k; i++) {
        if (isnan(x[i]) || isnan(y[i]) || x[i] > 1.0)
            continue;
        p[n++] = (struct xy){ clip01(x[i]), clip01(y[i]) };
    }
    qsort(p, n, sizeof *p, cmp_xy);

    /* One point per x (the highest y), then the non-decreasing frontier. */
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u > 0 && p[u - 1].x == p[i].x)
            u--; /* sorted by y within equal x: the later one is higher */
        p[u++] = p[i];
    }
    size_t f = 0;
    double best = -1.0;
    for (size_t i = 0; i < u; i++)
        if (p[i].y >= best) {
            best = p[i].y;
            p[f++] = p[i];
        }

    /* Upper concave envelope (monotone chain, dropping collinear points). */
    size_t h = 0;
    for (size_t i = 0; i < f; i++) {
        while (h >= 2) {
            struct xy o = p[h - 2], a = p[h - 1], b = p[i];
            double cross = (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
            if (cross < 0.0)
                break;
            h--;
        }
        p[h++] = p[i];
    }
    double area = 0.0;
    for (size_t i = 1; i < h; i++)
        area += (p[i].x - p[i - 1].x) * (p[i].y + p[i - 1].y) * 0.5;
    free(p);
    return area;
}

double ipr_eval_saving(const struct ipr_eval_ref *ref, const double *Q, const double *C,
                       size_t k, double p)
{
    if (!(ref->c_s > 0))
        return NAN;
    double target = p == 1.0 ? ref->q_s : ref->q_w + p * (ref->q_s - ref->q_w);
    double tol = IPR_EVAL_EPS * (fabs(target) > 1.0 ? fabs(target) : 1.0);
    double best = INFINITY;
    for (size_t i = 0; i < k; i++)
        if (Q[i] >= target - tol && C[i] < best)
            best = C[i];
    return isfinite(best) ? 1.0 - best / ref->c_s : NAN;
}

void ipr_eval_summarise(const struct ipr_eval_ref *ref, const double *Q, const double *C,
                        size_t k, struct ipr_eval_summary *out)
{
    out->arqgc = NAN;
    double *x = malloc((k + 1) * sizeof *x), *y = malloc((k + 1) * sizeof *y);
    int degenerate = !(ref->c_s > ref->c_w) || !(ref->q_s > ref->q_w);
    if (x && y && !degenerate) {
        for (size_t i = 0; i < k; i++) {
            x[i] = ipr_eval_x(ref, C[i]);
            y[i] = ipr_eval_y(ref, Q[i]);
        }
        out->arqgc = ipr_eval_arqgc_xy(x, y, k);
    }
    free(x);
    free(y);
    out->save_parity = ipr_eval_saving(ref, Q, C, k, 1.0);
    out->save_pgr50 = degenerate ? NAN : ipr_eval_saving(ref, Q, C, k, 0.5);
    out->save_pgr80 = degenerate ? NAN : ipr_eval_saving(ref, Q, C, k, 0.8);
    out->save_pgr95 = degenerate ? NAN : ipr_eval_saving(ref, Q, C, k, 0.95);
    out->max_quality = NAN;
    out->max_quality_cost = NAN;
    for (size_t i = 0; i < k; i++)
        if (isnan(out->max_quality) || Q[i] > out->max_quality ||
            (Q[i] == out->max_quality && C[i] < out->max_quality_cost)) {
            out->max_quality = Q[i];
            out->max_quality_cost = C[i];
        }
}

int ipr_eval_curve_alloc(struct ipr_eval_curve *cv, size_t k, size_t m)
{
    memset(cv, 0, sizeof *cv);
    cv->k = k;
    cv->m = m;
    cv->tau = calloc(k ? k : 1, sizeof *cv->tau);
    cv->quality = calloc(k ? k : 1, sizeof *cv->quality);
    cv->cost = calloc(k ? k : 1, sizeof *cv->cost);
    cv->share = calloc(k && m ? k * m : 1, sizeof *cv->share);
    if (!cv->tau || !cv->quality || !cv->cost || !cv->share) {
        ipr_eval_curve_free(cv);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    return IPR_OK;
}

void ipr_eval_curve_free(struct ipr_eval_curve *cv)
{
    if (!cv)
        return;
    free(cv->tau);
    free(cv->quality);
    free(cv->cost);
    free(cv->share);
    memset(cv, 0, sizeof *cv);
}

int ipr_eval_curve_run(const double *q, const double *c, const double *E, size_t n, size_t m,
                       enum ipr_rule rule, double delta, const double *taus, size_t k,
                       ipr_eval_pred_fn pred_fn, void *user,
                       int *choice, struct ipr_eval_curve *cv)
{
    if (m == 0 || m > IPR_MAX_MODELS || n == 0)
        return ipr_error_set(IPR_ERR_INVAL, "evaluation needs 1..%d models and at least one prompt",
                             IPR_MAX_MODELS);
    int rc = ipr_eval_curve_alloc(cv, k, m);
    if (rc)
        return rc;
    double pred[IPR_MAX_MODELS];
    size_t *count = calloc(m, sizeof *count);
    if (!count) {
        ipr_eval_curve_free(cv);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    for (size_t t = 0; t < k; t++) {
        double sq = 0, sc = 0;
        memset(count, 0, m * sizeof *count);
        for (size_t i = 0; i < n; i++) {
            rc = pred_fn(user, i, t, pred);
            if (rc)
                goto fail;
            struct ipr_decision d;
            rc = ipr_rule_apply(rule, taus[t], delta, pred, E + i * m, NULL, m, NULL, &d);
            if (rc) {
                ipr_error_wrap(rc, "prompt %zu, tau %g", i, taus[t]);
                goto fail;
            }
            size_t j = (size_t)d.model;
            double v = q[i * m + j];
            sq += isnan(v) ? 0.0 : v;
            sc += c[i * m + j];
            count[j]++;
            if (choice)
                choice[t * n + i] = d.model;
        }
        cv->tau[t] = taus[t];
        cv->quality[t] = sq / (double)n;
        cv->cost[t] = sc / (double)n;
        for (size_t j = 0; j < m; j++)
            cv->share[t * m + j] = (double)count[j] / (double)n;
    }
    free(count);
    return IPR_OK;
fail:
    free(count);
    ipr_eval_curve_free(cv);
    return rc;
}

int ipr_eval_pred_matrix(void *user, size_t i, size_t ti, double *pred)
{
    const struct ipr_eval_matrix *mx = user;
    (void)ti;
    memcpy(pred, mx->p + i * mx->m, mx->m * sizeof *pred);
    return IPR_OK;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int ipr_eval_pred_random(void *user, size_t i, size_t ti, double *pred)
{
    const struct ipr_eval_random *r = user;
    uint64_t h = splitmix64(r->seed);
    h = splitmix64(h ^ (uint64_t)i);
    h = splitmix64(h ^ ((uint64_t)ti << 32));
    for (size_t j = 0; j < r->m; j++)
        pred[j] = (double)(splitmix64(h ^ (uint64_t)j) >> 11) * 0x1.0p-53;
    return IPR_OK;
}

void ipr_eval_point(const double *quality, const double *cost, size_t n, double *Q, double *C)
{
    double sq = 0, sc = 0;
    for (size_t i = 0; i < n; i++) {
        sq += isnan(quality[i]) ? 0.0 : quality[i];
        sc += cost[i];
    }
    *Q = n ? sq / (double)n : NAN;
    *C = n ? sc / (double)n : NAN;
}

/* --- QE accuracy --- */

static void fractional_ranks(const double *v, size_t m, double *rank)
{
    size_t idx[IPR_MAX_MODELS];
    for (size_t i = 0; i < m; i++)
        idx[i] = i;
    for (size_t i = 1; i < m; i++) { /* insertion sort: m is small */
        size_t t = idx[i], j = i;
        while (j > 0 && v[idx[j - 1]] > v[t]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = t;
    }
    for (size_t a = 0; a < m;) {
        size_t b = a;
        while (b + 1 < m && v[idx[b + 1]] == v[idx[a]])
            b++;
        double r = (double)(a + b) / 2.0 + 1.0;
        for (size_t j = a; j <= b; j++)
            rank[idx[j]] = r;
        a = b + 1;
    }
}

double ipr_eval_spearman(const double *a, const double *b, size_t m)
{
    if (m < 2 || m > IPR_MAX_MODELS)
        return NAN;
    double ra[IPR_MAX_MODELS], rb[IPR_MAX_MODELS];
    fractional_ranks(a, m, ra);
    fractional_ranks(b, m, rb);
    double ma = 0, mb = 0;
    for (size_t i = 0; i < m; i++) {
        ma += ra[i];
        mb += rb[i];
    }
    ma /= (double)m;
    mb /= (double)m;
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < m; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    if (saa <= 0 || sbb <= 0)
        return NAN;
    return sab / sqrt(saa * sbb);
}

int ipr_eval_qe_compute(const double *P, const double *q, size_t n, size_t m, struct ipr_eval_qe *out)
{
    memset(out, 0, sizeof *out);
    if (m == 0 || m > IPR_MAX_MODELS)
        return ipr_error_set(IPR_ERR_INVAL, "QE accuracy needs 1..%d models", IPR_MAX_MODELS);
    out->m = m;
    out->mae = calloc(m, sizeof *out->mae);
    if (!out->mae)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    double hits = 0, rho = 0;
    double qi[IPR_MAX_MODELS];
    for (size_t i = 0; i < n; i++) {
        const double *p = P + i * m;
        double hi = -INFINITY, lo = INFINITY;
        for (size_t j = 0; j < m; j++) {
            qi[j] = isnan(q[i * m + j]) ? 0.0 : q[i * m + j];
            if (qi[j] > hi) hi = qi[j];
            if (qi[j] < lo) lo = qi[j];
            out->mae[j] += fabs(p[j] - qi[j]);
        }
        if (hi - lo > IPR_EVAL_EPS) {
            size_t best = 0;
            for (size_t j = 1; j < m; j++)
                if (p[j] > p[best])
                    best = j;
            hits += qi[best] >= hi - IPR_EVAL_EPS;
            out->top1_n++;
        }
        double r = ipr_eval_spearman(p, qi, m);
        if (!isnan(r)) {
            rho += r;
            out->spearman_n++;
        }
    }
    for (size_t j = 0; j < m; j++)
        out->mae[j] = n ? out->mae[j] / (double)n : NAN;
    out->top1 = out->top1_n ? hits / (double)out->top1_n : NAN;
    out->spearman = out->spearman_n ? rho / (double)out->spearman_n : NAN;
    return IPR_OK;
}

void ipr_eval_qe_free(struct ipr_eval_qe *qe)
{
    if (!qe)
        return;
    free(qe->mae);
    qe->mae = NULL;
}
