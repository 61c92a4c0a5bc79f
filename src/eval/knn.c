/*
 * knn.c — the k-nearest-neighbour baseline router (DESIGN.md §4): predicted
 * quality of a model = mean label of the k training prompts most similar by
 * cosine on the same frozen embedding; k chosen on a validation split of the
 * training data by ARQGC. Queries are split across threads in contiguous
 * blocks; each query is computed by one thread alone, in a fixed order, so the
 * output does not depend on the thread count.
 */
#include "ipr/eval.h"
#include "ipr/err.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Unit-normalised copy of rows (n, d) as doubles; zero rows stay zero. */
static double *normalise_rows(const float *x, size_t n, size_t d)
{
    double *out = malloc((n && d ? n * d : 1) * sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (size_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * (double)x[i * d + j];
        double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (size_t j = 0; j < d; j++)
            out[i * d + j] = (double)x[i * d + j] * inv;
    }
    return out;
}

struct cand { double sim; size_t idx; };

/* a ranks before b: higher similarity, then lower index. */
static int better(struct cand a, struct cand b)
{
    return a.sim > b.sim || (a.sim == b.sim && a.idx < b.idx);
}

/* Min-heap on "better" (the root is the worst kept). */
static void sift_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(h[w], h[l])) w = l;
        if (r < n && better(h[w], h[r])) w = r;
        if (w == i)
            return;
        struct cand t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

static void sift_up(struct cand *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(h[p], h[i]))
            return;
        struct cand t = h[i]; h[i] = h[p]; h[p] = t;
        i = p;
    }
}

static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return better(*x, *y) ? -1 : better(*y, *x) ? 1 : 0;
}

struct nn_job {
    const double *ref, *qry;
    size_t n_ref, d, kmax, lo, hi;
    size_t *nbr;         /* (n_q, kmax) best first */
    struct cand *heap;   /* (kmax) */
    atomic_size_t *done; /* queries finished, for progress */
};

static void *nn_worker(void *arg)
{
    struct nn_job *jb = arg;
    for (size_t qi = jb->lo; qi < jb->hi; qi++) {
        const double *qv = jb->qry + qi * jb->d;
        size_t h = 0;
        for (size_t r = 0; r < jb->n_ref; r++) {
            const double *rv = jb->ref + r * jb->d;
            /* four partial sums: lets the compiler overlap the additions
             * (no -ffast-math); the order is fixed, so results are too */
            double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            size_t j = 0;
            for (; j + 4 <= jb->d; j += 4) {
                s0 += qv[j] * rv[j];
                s1 += qv[j + 1] * rv[j + 1];
                s2 += qv[j + 2] * rv[j + 2];
                s3 += qv[j + 3] * rv[j + 3];
            }
            for (; j < jb->d; j++)
                s0 += qv[j] * rv[j];
            struct cand c = { (s0 + s1) + (s2 + s3), r };
            if (h < jb->kmax) {
                jb->heap[h++] = c;
                sift_up(jb->heap, h - 1);
            } else if (better(c, jb->heap[0])) {
                jb->heap[0] = c;
                sift_down(jb->heap, h, 0);
            }
        }
        qsort(jb->heap, h, sizeof *jb->heap, cmp_cand);
        for (size_t j = 0; j < h; j++)
            jb->nbr[qi * jb->kmax + j] = jb->heap[j].idx;
        atomic_fetch_add_explicit(jb->done, 1, memory_order_relaxed);
    }
    return NULL;
}

static int resolve_threads(int threads, size_t n_q)
{
    long t = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    if (t > 64) t = 64;
    if ((size_t)t > n_q) t = n_q ? (long)n_q : 1;
    return (int)t;
}

/* Neighbour lists (n_q, kmax), best first; kmax <= n_ref. Every block runs
 * on its own thread while this one reports progress (if asked); a block whose
 * thread cannot start runs here. */
static int neighbours(const float *ref_x, size_t n_ref, const float *qx, size_t n_q, size_t d,
                      size_t kmax, int threads, size_t *nbr, const struct ipr_eval_progress *pg)
{
    double *ref = normalise_rows(ref_x, n_ref, d), *qry = normalise_rows(qx, n_q, d);
    int nt = resolve_threads(threads, n_q);
    struct nn_job jobs[64];
    pthread_t tid[64];
    struct cand *heaps = malloc((size_t)nt * kmax * sizeof *heaps);
    atomic_size_t done;
    atomic_init(&done, 0);
    int rc = IPR_OK;
    if (!ref || !qry || !heaps) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t per = (n_q + (size_t)nt - 1) / (size_t)nt;
    int created[64] = { 0 }, n_created = 0;
    for (int t = 0; t < nt; t++) {
        size_t lo = (size_t)t * per, hi = lo + per > n_q ? n_q : lo + per;
        jobs[t] = (struct nn_job){ ref, qry, n_ref, d, kmax, lo < n_q ? lo : n_q, hi, nbr,
                                   heaps + (size_t)t * kmax, &done };
        if (pthread_create(&tid[t], NULL, nn_worker, &jobs[t]) == 0) {
            created[t] = 1;
            n_created++;
        } else {
            nn_worker(&jobs[t]);
        }
    }
    while (pg && pg->fn && n_created) {
        size_t dn = atomic_load_explicit(&done, memory_order_relaxed);
        pg->fn(pg->user, dn, n_q);
        if (dn >= n_q)
            break;
        usleep(100000);
    }
    for (int t = 0; t < nt; t++)
        if (created[t])
            pthread_join(tid[t], NULL);
out:
    free(ref);
    free(qry);
    free(heaps);
    return rc;
}

/* Mean labels of the first k neighbours; fallback per model: its mean over
 * all reference rows (0.5 when it has no label at all). */
static void knn_average(const size_t *nbr, size_t kmax, size_t k, const double *ref_q,
                        size_t n_ref, size_t n_q, size_t m, double *out)
{
    double fb[IPR_MAX_MODELS];
    for (size_t j = 0; j < m; j++) {
        double s = 0;
        size_t c = 0;
        for (size_t r = 0; r < n_ref; r++)
            if (!isnan(ref_q[r * m + j])) {
                s += ref_q[r * m + j];
                c++;
            }
        fb[j] = c ? s / (double)c : 0.5;
    }
    for (size_t i = 0; i < n_q; i++)
        for (size_t j = 0; j < m; j++) {
            double s = 0;
            size_t c = 0;
            for (size_t a = 0; a < k; a++) {
                double v = ref_q[nbr[i * kmax + a] * m + j];
                if (!isnan(v)) {
                    s += v;
                    c++;
                }
            }
            out[i * m + j] = c ? s / (double)c : fb[j];
        }
}

int ipr_eval_knn_predict(const float *ref_x, const double *ref_q, size_t n_ref,
                         const float *qx, size_t n_q, size_t d, size_t m,
                         size_t k, int threads, double *out, const struct ipr_eval_progress *pg)
{
    if (m == 0 || m > IPR_MAX_MODELS)
        return ipr_error_set(IPR_ERR_INVAL, "k-NN needs 1..%d models", IPR_MAX_MODELS);
    if (k == 0 || n_ref == 0)
        return ipr_error_set(IPR_ERR_INVAL, "k-NN needs k >= 1 and a non-empty reference set");
    if (k > n_ref)
        k = n_ref;
    if (n_q == 0)
        return IPR_OK;
    size_t *nbr = malloc(n_q * k * sizeof *nbr);
    if (!nbr)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    int rc = neighbours(ref_x, n_ref, qx, n_q, d, k, threads, nbr, pg);
    if (rc == IPR_OK)
        knn_average(nbr, k, k, ref_q, n_ref, n_q, m, out);
    free(nbr);
    return rc;
}

int ipr_eval_knn_choose_k(const float *x, const double *train_q, const double *train_c,
                          const double *E, const uint8_t *is_val, size_t n, size_t d, size_t m,
                          const size_t *cands, size_t n_cands,
                          enum ipr_rule rule, double delta, int threads,
                          size_t *k_out, double *arqgc_out, const struct ipr_eval_progress *pg)
{
    if (m == 0 || m > IPR_MAX_MODELS || n_cands == 0)
        return ipr_error_set(IPR_ERR_INVAL, "k-NN selection needs 1..%d models and candidate k",
                             IPR_MAX_MODELS);
    size_t n_val = 0;
    for (size_t i = 0; i < n; i++)
        n_val += is_val[i] != 0;
    size_t n_ref = n - n_val;
    if (n_val == 0 || n_ref == 0)
        return ipr_error_set(IPR_ERR_INVAL, "k-NN selection needs both validation and reference rows");

    size_t kmax = 0;
    for (size_t c = 0; c < n_cands; c++)
        if (cands[c] <= n_ref && cands[c] > kmax)
            kmax = cands[c];
    if (kmax == 0)
        kmax = n_ref; /* every candidate exceeds the reference set: use it all */

    int rc = IPR_ERR_NOMEM;
    float *rx = malloc(n_ref * d * sizeof *rx + 1), *vx = malloc(n_val * d * sizeof *vx + 1);
    double *rq = malloc(n_ref * m * sizeof *rq), *vq = malloc(n_val * m * sizeof *vq);
    double *vc = malloc(n_val * m * sizeof *vc), *vE = malloc(n_val * m * sizeof *vE);
    double *P = malloc(n_val * m * sizeof *P);
    size_t *nbr = malloc(n_val * kmax * sizeof *nbr);
    struct ipr_eval_ref ref = { 0 };
    if (!rx || !vx || !rq || !vq || !vc || !vE || !P || !nbr) {
        ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0, a = 0, b = 0; i < n; i++) {
        if (is_val[i]) {
            memcpy(vx + b * d, x + i * d, d * sizeof *vx);
            for (size_t j = 0; j < m; j++) {
                double v = train_q[i * m + j];
                vq[b * m + j] = isnan(v) ? 0.0 : v;
            }
            memcpy(vc + b * m, train_c + i * m, m * sizeof *vc);
            memcpy(vE + b * m, E + i * m, m * sizeof *vE);
            b++;
        } else {
            memcpy(rx + a * d, x + i * d, d * sizeof *rx);
            memcpy(rq + a * m, train_q + i * m, m * sizeof *rq);
            a++;
        }
    }
    rc = ipr_eval_ref_compute(vq, vc, n_val, m, &ref);
    if (rc)
        goto done;
    rc = neighbours(rx, n_ref, vx, n_val, d, kmax, threads, nbr, pg);
    if (rc)
        goto done;

    double taus[IPR_EVAL_N_TAUS];
    for (size_t t = 0; t < IPR_EVAL_N_TAUS; t++)
        taus[t] = ipr_eval_tau(t);
    double best = -INFINITY;
    size_t best_k = 0;
    for (size_t c = 0; c < n_cands; c++) {
        if (arqgc_out)
            arqgc_out[c] = NAN;
        size_t k = cands[c];
        if (k == 0 || k > kmax)
            continue;
        knn_average(nbr, kmax, k, rq, n_ref, n_val, m, P);
        struct ipr_eval_matrix mx = { P, m };
        struct ipr_eval_curve cv;
        rc = ipr_eval_curve_run(vq, vc, vE, n_val, m, rule, delta, taus, IPR_EVAL_N_TAUS,
                                ipr_eval_pred_matrix, &mx, NULL, &cv);
        if (rc)
            goto done;
        struct ipr_eval_summary sm;
        ipr_eval_summarise(&ref, cv.quality, cv.cost, cv.k, &sm);
        ipr_eval_curve_free(&cv);
        if (arqgc_out)
            arqgc_out[c] = sm.arqgc;
        /* A degenerate validation split (the strongest model is also the
         * cheapest) has no ARQGC: rank by the best quality reached instead. */
        double a = isnan(sm.arqgc) ? sm.max_quality - 2.0 : sm.arqgc;
        if (best_k == 0 || a > best || (a == best && k < best_k)) {
            best = a;
            best_k = k;
        }
    }
    if (best_k == 0)
        best_k = kmax;
    *k_out = best_k;
    rc = IPR_OK;
done:
    ipr_eval_ref_free(&ref);
    free(rx); free(vx); free(rq); free(vq); free(vc); free(vE); free(P); free(nbr);
    return rc;
}
