/*
 * qe_fit.c — the training loop: shuffled minibatches, per-chunk gradients
 * computed in parallel and summed in chunk order, Adam with decoupled weight
 * decay, and early stopping on the validation objective with the best
 * weights restored. Also the parallel no-dropout forward pass (logits) used
 * for validation and calibration.
 */
#include "qe_internal.h"
#include "ipr/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_SLOTS 16 /* work buffers for forward-only passes */

struct step_job {
    const struct qe_net *net;
    const float *theta;
    struct qe_src src;
    const size_t *rows;
    size_t n;             /* rows in the batch or the pass */
    int train;
    uint64_t step;
    double inv_lab, inv_pairs;
    float *grads;         /* (chunks, n_params) training only */
    float *work;          /* (slots, work_floats) */
    size_t work_floats, slots;
    double *bce, *pair;   /* (chunks) */
    float *z;             /* (n, m) or NULL */
};

static void chunk_range(size_t n, size_t c, size_t *r0, size_t *len)
{
    *r0 = c * QE_CHUNK;
    *len = n - *r0 < QE_CHUNK ? n - *r0 : QE_CHUNK;
}

/* Training: task c = chunk c, with work slot c and gradient buffer c. */
static void step_task(void *arg, size_t c)
{
    struct step_job *j = arg;
    size_t r0, len;
    chunk_range(j->n, c, &r0, &len);
    j->bce[c] = j->pair[c] = 0;
    qe_net_chunk(j->net, j->theta, j->src, j->rows + r0, len, j->train, j->step, j->inv_lab,
                 j->inv_pairs, j->grads + c * j->net->n_params, j->work + c * j->work_floats,
                 &j->bce[c], &j->pair[c], NULL);
}

/* Forward only: task s handles chunks s, s + slots, ... with work slot s. */
static void eval_task(void *arg, size_t s)
{
    struct step_job *j = arg;
    size_t chunks = (j->n + QE_CHUNK - 1) / QE_CHUNK;
    for (size_t c = s; c < chunks; c += j->slots) {
        size_t r0, len;
        chunk_range(j->n, c, &r0, &len);
        j->bce[c] = j->pair[c] = 0;
        qe_net_chunk(j->net, j->theta, j->src, j->rows + r0, len, 0, 0, 0, 0, NULL,
                     j->work + s * j->work_floats, &j->bce[c], &j->pair[c],
                     j->z ? j->z + r0 * j->net->m : NULL);
    }
}

/* Forward pass over n rows; returns the sums of BCE and pair losses. */
static int eval_rows(const struct qe_net *net, const float *theta, struct qe_src src,
                     const size_t *rows, size_t n, struct qe_pool *pool, float *z,
                     double *bce, double *pair)
{
    size_t chunks = (n + QE_CHUNK - 1) / QE_CHUNK;
    struct step_job j = { .net = net, .theta = theta, .src = src, .rows = rows, .n = n,
                          .work_floats = qe_net_work_floats(net), .z = z };
    j.slots = chunks < EVAL_SLOTS ? chunks : EVAL_SLOTS;
    *bce = *pair = 0;
    if (!n)
        return IPR_OK;
    j.work = malloc(j.slots * j.work_floats * sizeof *j.work);
    j.bce = malloc(chunks * sizeof *j.bce);
    j.pair = malloc(chunks * sizeof *j.pair);
    if (!j.work || !j.bce || !j.pair) {
        free(j.work), free(j.bce), free(j.pair);
        return ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for a forward pass of %zu rows", n);
    }
    qe_pool_run(pool, eval_task, &j, j.slots);
    for (size_t c = 0; c < chunks; c++) {
        *bce += j.bce[c];
        *pair += j.pair[c];
    }
    free(j.work), free(j.bce), free(j.pair);
    return IPR_OK;
}

int qe_net_logits(const struct qe_net *net, const float *theta, struct qe_src src,
                  const size_t *rows, size_t n, struct qe_pool *pool, float *z)
{
    double b, p;
    return eval_rows(net, theta, src, rows, n, pool, z, &b, &p);
}

struct adam_job {
    const float *grads;
    size_t chunks, n_params, ranges;
    float *theta, *m1, *m2;
    const uint8_t *decay;
    float lr, b1, b2, bc1, bc2, eps, wd;
};

/* Sums the chunk gradients of a parameter range in chunk order, then steps. */
static void adam_task(void *arg, size_t r)
{
    struct adam_job *a = arg;
    size_t per = (a->n_params + a->ranges - 1) / a->ranges;
    size_t k0 = r * per, k1 = k0 + per < a->n_params ? k0 + per : a->n_params;
    for (size_t k = k0; k < k1; k++) {
        float g = a->grads[k];
        for (size_t c = 1; c < a->chunks; c++)
            g += a->grads[c * a->n_params + k];
        a->m1[k] = a->b1 * a->m1[k] + (1 - a->b1) * g;
        a->m2[k] = a->b2 * a->m2[k] + (1 - a->b2) * g * g;
        float mh = a->m1[k] / a->bc1, vh = a->m2[k] / a->bc2;
        float upd = mh / (sqrtf(vh) + a->eps);
        if (a->decay[k])
            upd += a->wd * a->theta[k];
        a->theta[k] -= a->lr * upd;
    }
}

static double objective(const struct qe_net *net, double bce, double pair, size_t lab, size_t pairs)
{
    double o = lab ? bce / (double)lab : 0;
    if (net->pairwise > 0 && pairs)
        o += net->pairwise * pair / (double)pairs;
    return o;
}

int qe_fit(const struct qe_net *net, float *theta, struct qe_src tr, const size_t *tr_rows,
           size_t n_tr, struct qe_src va, const size_t *va_rows, size_t n_va,
           const struct ipr_qe_config *cfg, struct qe_pool *pool, struct ipr_qe_report *rep)
{
    const size_t P = net->n_params, m = net->m;
    const size_t batch = (size_t)cfg->batch;
    const size_t max_chunks = (batch + QE_CHUNK - 1) / QE_CHUNK;
    const size_t wf = qe_net_work_floats(net);
    int rc = IPR_OK;
    size_t *perm = malloc((n_tr ? n_tr : 1) * sizeof *perm);
    float *grads = malloc(max_chunks * P * sizeof *grads);
    float *work = malloc(max_chunks * wf * sizeof *work);
    float *m1 = calloc(P, sizeof *m1), *m2 = calloc(P, sizeof *m2);
    float *best = malloc(P * sizeof *best);
    uint8_t *decay = malloc(P);
    double *cb = malloc(max_chunks * sizeof *cb), *cp = malloc(max_chunks * sizeof *cp);
    if (!perm || !grads || !work || !m1 || !m2 || !best || !decay || !cb || !cp) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "qe: out of memory for training (%zu parameters)", P);
        goto out;
    }
    qe_net_decay_mask(net, decay);
    memcpy(perm, tr_rows, n_tr * sizeof *perm);
    memcpy(best, theta, P * sizeof *best);

    size_t va_lab = 0, va_pairs = 0;
    for (size_t i = 0; i < n_va; i++) {
        size_t l, p;
        qe_row_counts(va.y + va_rows[i] * m, m, &l, &p);
        va_lab += l;
        va_pairs += p;
    }
    const int early = n_va > 0 && va_lab > 0;
    double best_obj = INFINITY;
    uint64_t rng = cfg->seed ^ 0x2545f4914f6cdd1dull, step = 0;
    const double b1 = 0.9, b2 = 0.999;
    struct adam_job aj = { .grads = grads, .n_params = P, .theta = theta, .m1 = m1, .m2 = m2,
                           .decay = decay, .lr = (float)cfg->lr, .b1 = (float)b1, .b2 = (float)b2,
                           .eps = 1e-8f, .wd = (float)cfg->weight_decay };
    aj.ranges = P / 4096 + 1;
    if (aj.ranges > 64)
        aj.ranges = 64;
    rep->epochs = rep->best_epoch = 0;
    rep->train_loss = NAN;
    int since_best = 0;

    const size_t every = cfg->eval_every > 0 ? (size_t)cfg->eval_every : 0;
    size_t since_check = 0;
    int stop = 0;
    for (int epoch = 1; epoch <= cfg->max_epochs && !stop; epoch++) {
        for (size_t i = n_tr; i > 1; i--) {
            size_t k = (size_t)(qe_splitmix(&rng) % i);
            size_t t = perm[i - 1];
            perm[i - 1] = perm[k];
            perm[k] = t;
        }
        double ep_bce = 0;
        size_t ep_lab = 0;
        for (size_t s0 = 0; s0 < n_tr && !stop; s0 += batch) {
            size_t nb = n_tr - s0 < batch ? n_tr - s0 : batch;
            size_t lab = 0, pairs = 0;
            for (size_t i = 0; i < nb; i++) {
                size_t l, p;
                qe_row_counts(tr.y + perm[s0 + i] * m, m, &l, &p);
                lab += l;
                pairs += p;
            }
            since_check += nb;
            if (lab) {
                struct step_job j = { .net = net, .theta = theta, .src = tr, .rows = perm + s0,
                                      .n = nb, .train = 1, .step = step,
                                      .inv_lab = 1.0 / (double)lab,
                                      .inv_pairs = pairs ? 1.0 / (double)pairs : 0,
                                      .grads = grads, .work = work, .work_floats = wf,
                                      .bce = cb, .pair = cp };
                size_t chunks = (nb + QE_CHUNK - 1) / QE_CHUNK;
                qe_pool_run(pool, step_task, &j, chunks);
                for (size_t c = 0; c < chunks; c++)
                    ep_bce += cb[c];
                ep_lab += lab;
                step++;
                aj.chunks = chunks;
                aj.bc1 = (float)(1 - pow(b1, (double)step));
                aj.bc2 = (float)(1 - pow(b2, (double)step));
                qe_pool_run(pool, adam_task, &aj, aj.ranges);
            }
            /* validation at the end of every epoch, and every `every` rows
             * within long epochs; patience counts these checks */
            int end = s0 + nb >= n_tr;
            if (!end && !(every && since_check >= every))
                continue;
            since_check = 0;
            double tl = ep_lab ? ep_bce / (double)ep_lab : NAN;
            rep->epochs = epoch;
            if (!early) {
                rep->best_epoch = epoch;
                rep->train_loss = tl;
                continue;
            }
            double vb, vp;
            rc = eval_rows(net, theta, va, va_rows, n_va, pool, NULL, &vb, &vp);
            if (rc)
                goto out;
            double obj = objective(net, vb, vp, va_lab, va_pairs);
            if (cfg->verbose)
                fprintf(stderr, "qe: epoch %d%s train bce %.5f val objective %.5f%s\n", epoch,
                        end ? "" : " (part)", tl, obj, obj < best_obj ? " *" : "");
            if (obj < best_obj) {
                best_obj = obj;
                rep->best_epoch = epoch;
                rep->train_loss = tl;
                memcpy(best, theta, P * sizeof *best);
                since_best = 0;
            } else if (++since_best >= cfg->patience) {
                stop = 1;
            }
        }
    }
    if (early)
        memcpy(theta, best, P * sizeof *best);
out:
    free(perm), free(grads), free(work), free(m1), free(m2), free(best), free(decay);
    free(cb), free(cp);
    return rc;
}
