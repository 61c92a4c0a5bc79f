/*
 * cmd_eval.c — `ipr eval`: quality-cost curves and the metrics of DESIGN.md §4
 * for the router (every rule) and the baselines (single models, random,
 * oracle, k-NN) on one labelled test split; a table on stdout, and optionally
 * --json, --svg and a per-(prompt, tau) --dump.
 *
 *   ipr eval --router R.ipr --data TEST.jsonl [--train TRAIN.jsonl] ...
 *   ipr eval --data TEST.jsonl --registry REG.json [--train TRAIN.jsonl --encoder E] ...
 *
 * The second form evaluates the baselines only (no router needed). The metric
 * code lives in src/eval/ and works on arrays; this file loads the data, builds
 * the truth/expected-cost/prediction matrices over the candidate models and
 * writes the outputs. docs/evaluation.md describes every figure.
 */
#include "cli/cli.h"
#include "cli/eval_cmd.h"
#include "ipr/data.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/eval.h"
#include "ipr/router.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const usage_text =
    "usage: ipr eval --router R.ipr --data TEST.jsonl [options]\n"
    "       ipr eval --data TEST.jsonl --registry REG.json [options]   (baselines only)\n"
    "  --train TRAIN.jsonl     training split: enables the k-NN baseline (and mean-train costs)\n"
    "  --encoder E             encoder file (baselines-only k-NN; default: the router's)\n"
    "  --models a,b,...        narrow the candidates\n"
    "  --rule range|dynmax|difference   rule of the `ipr` entry and the baselines\n"
    "  --delta D               dynmax margin (default 0)\n"
    "  --expected-cost registry|mean-train|auto   what the rule sees as cost (default registry;\n"
    "                          auto = mean-train when the training data has costs)\n"
    "  --json R.json  --svg CURVE.svg [--log-x]  --dump DECISIONS.jsonl  --markdown TABLE.md\n"
    "  --name NAME             dataset name in the reports (default: the file name)\n"
    "  --dump-router ipr|oracle|random|knn   whose decisions --dump writes\n"
    "  --seed N                random baseline seed (default 1)\n"
    "  --knn-k K               fix k instead of choosing it on validation data\n"
    "  --threads N             worker threads (default: all cores)\n"
    "       ipr eval --log DECISIONS.db [--rule R] [--delta D] [--json R.json]   (replay a serve log)\n";

/* --- small helpers --- */

static int threads_of(long t)
{
    if (t <= 0)
        t = sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    if (t > 64) t = 64;
    return (int)t;
}

/* --- parallel router predictions / embeddings --- */

struct par_job {
    const struct ipr_dataset *ds;
    const struct ipr_router *router;   /* predictions when set */
    const struct ipr_encoder *enc;     /* else embeddings */
    size_t lo, hi, width;              /* rows [lo, hi), output width per row */
    double *P;                         /* (n, width) predictions */
    float *X;                          /* (n, width) embeddings */
    int rc;
    char err[256];
    size_t *done;
    pthread_mutex_t *mu;
};

static void *par_worker(void *arg)
{
    struct par_job *j = arg;
    struct ipr_router_ctx *rctx = NULL;
    struct ipr_embed_ctx *ectx = NULL;
    j->rc = j->router ? ipr_router_ctx_new(j->router, &rctx) : ipr_embed_ctx_new(j->enc, &ectx);
    for (size_t i = j->lo; j->rc == IPR_OK && i < j->hi; i++) {
        const char *t = j->ds->prompts[i].text;
        size_t len = strlen(t);
        if (j->router)
            j->rc = ipr_router_predict(j->router, rctx, t, len, j->P + i * j->width);
        else
            j->rc = ipr_encoder_embed(j->enc, ectx, t, len, j->X + i * j->width);
        if (j->rc)
            ipr_error_wrap(j->rc, "prompt %s", j->ds->prompts[i].id);
        if (((i - j->lo) & 15) == 15 || i + 1 == j->hi) {
            pthread_mutex_lock(j->mu);
            *j->done += ((i - j->lo) & 15) + 1;
            pthread_mutex_unlock(j->mu);
        }
    }
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", ipr_error_message());
    if (rctx)
        ipr_router_ctx_free(rctx);
    if (ectx)
        ipr_embed_ctx_free(j->enc, ectx);
    return NULL;
}

/* Runs the router (or the encoder) over every prompt of ds on nt threads. */
static int run_parallel(const struct ipr_dataset *ds, const struct ipr_router *router,
                        const struct ipr_encoder *enc, size_t width, double *P, float *X,
                        int nt, const char *label)
{
    struct par_job jobs[64];
    pthread_t tid[64];
    int created[64] = { 0 };
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    size_t done = 0;
    if ((size_t)nt > ds->n)
        nt = ds->n ? (int)ds->n : 1;
    size_t per = (ds->n + (size_t)nt - 1) / (size_t)nt;
    struct cli_progress pg;
    cli_progress_start(&pg, label, ds->n);
    for (int t = 0; t < nt; t++) {
        size_t lo = (size_t)t * per;
        if (lo > ds->n) lo = ds->n;
        size_t hi = lo + per > ds->n ? ds->n : lo + per;
        jobs[t] = (struct par_job){ .ds = ds, .router = router, .enc = enc, .lo = lo, .hi = hi,
                                    .width = width, .P = P, .X = X, .done = &done, .mu = &mu };
        created[t] = pthread_create(&tid[t], NULL, par_worker, &jobs[t]) == 0;
        if (!created[t])
            par_worker(&jobs[t]);
    }
    for (;;) {
        int running = 0;
        pthread_mutex_lock(&mu);
        size_t d = done;
        pthread_mutex_unlock(&mu);
        cli_progress_update(&pg, d);
        if (d >= ds->n)
            break;
        for (int t = 0; t < nt; t++)
            running |= created[t] && jobs[t].rc == IPR_OK;
        if (!running)
            break;
        usleep(50000);
    }
    int rc = IPR_OK;
    for (int t = 0; t < nt; t++) {
        if (created[t])
            pthread_join(tid[t], NULL);
        if (jobs[t].rc && rc == IPR_OK) {
            rc = jobs[t].rc;
            ipr_error_set(rc, "%s", jobs[t].err);
        }
    }
    cli_progress_end(&pg);
    return rc;
}

const size_t eval_knn_cands[6] = { 5, 10, 20, 50, 100, 200 };

static void note(struct eval_run *v, const char *msg)
{
    if (v->n_notes < 4)
        snprintf(v->notes[v->n_notes++], sizeof v->notes[0], "%s", msg);
}

static int has_label(const struct ipr_dataset *ds, int col)
{
    for (size_t i = 0; i < ds->n; i++)
        if (!isnan(*ipr_dataset_score(ds, i, (size_t)col)))
            return 1;
    return 0;
}

static int in_list(const char *list, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && strncmp(p, name, l) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* Candidates: the registry's models (or, without one, the test columns) that
 * are labelled somewhere in the test data, narrowed by --models. */
static int pick_candidates(struct eval_run *v, const char *models)
{
    const struct ipr_dataset *t = v->test;
    v->m = 0;
    size_t total = v->reg ? v->reg->n : t->n_models;
    for (size_t k = 0; k < total; k++) {
        const char *name = v->reg ? v->reg->models[k].name : t->models[k];
        int col = ipr_dataset_model_index(t, name);
        if (col < 0 || !has_label(t, col))
            continue;
        if (models && !in_list(models, name))
            continue;
        if (v->m >= IPR_MAX_MODELS)
            return ipr_error_set(IPR_ERR_LIMIT, "more than %d candidate models", IPR_MAX_MODELS);
        v->col[v->m] = col;
        v->regi[v->m] = v->reg ? (int)k : -1;
        v->names[v->m] = name;
        v->m++;
    }
    if (models) { /* every named model must be a candidate */
        for (const char *p = models; *p;) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            int found = 0;
            for (size_t j = 0; j < v->m; j++)
                found |= strlen(v->names[j]) == l && strncmp(v->names[j], p, l) == 0;
            if (!found && l)
                return ipr_error_set(IPR_ERR_NOTFOUND, "--models: '%.*s' is not a candidate (not in the %s, or never labelled in the test data)",
                                     (int)l, p, v->reg ? "registry" : "data");
            if (!e)
                break;
            p = e + 1;
        }
    }
    if (v->m < 2)
        return ipr_error_set(IPR_ERR_INVAL, "need at least 2 candidate models labelled in the test data, found %zu", v->m);
    return IPR_OK;
}

/* True quality (NaN -> 0) and true cost (NaN -> the registry estimate). */
static int build_truth(struct eval_run *v)
{
    size_t n = v->n, m = v->m;
    v->q = malloc(n * m * sizeof *v->q);
    v->c = malloc(n * m * sizeof *v->c);
    if (!v->q || !v->c)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *text = v->test->prompts[i].text;
        size_t tokens = 0;
        int counted = 0;
        for (size_t j = 0; j < m; j++) {
            double s = *ipr_dataset_score(v->test, i, (size_t)v->col[j]);
            double c = *ipr_dataset_cost(v->test, i, (size_t)v->col[j]);
            v->q[i * m + j] = isnan(s) ? 0.0 : s;
            if (isnan(c)) {
                if (v->regi[j] < 0)
                    return ipr_error_set(IPR_ERR_INVAL, "prompt %s has no cost for %s and there is no registry price (give --registry)",
                                         v->test->prompts[i].id, v->names[j]);
                if (!counted) {
                    tokens = ipr_count_tokens(text, strlen(text));
                    counted = 1;
                }
                c = ipr_registry_expected_cost(v->reg, (size_t)v->regi[j], tokens);
            }
            v->c[i * m + j] = c;
        }
    }
    return IPR_OK;
}

/* Expected costs the rule sees for every prompt of ds (out: (ds->n, m)):
 * the registry's estimate per prompt (through the router when there is one)
 * or the mean training cost per model. */
static int expected_costs(const struct eval_run *v, const struct ipr_dataset *ds, double *out)
{
    size_t m = v->m;
    if (strcmp(v->expected_cost, "mean-train") == 0) {
        if (!v->train)
            return ipr_error_set(IPR_ERR_INVAL, "--expected-cost mean-train needs --train");
        double mean[IPR_MAX_MODELS];
        for (size_t j = 0; j < m; j++) {
            int col = ipr_dataset_model_index(v->train, v->names[j]);
            double s = 0;
            size_t k = 0;
            for (size_t i = 0; col >= 0 && i < v->train->n; i++) {
                double c = *ipr_dataset_cost(v->train, i, (size_t)col);
                if (!isnan(c)) {
                    s += c;
                    k++;
                }
            }
            if (!k)
                return ipr_error_set(IPR_ERR_INVAL, "--expected-cost mean-train: the training data has no cost for %s", v->names[j]);
            mean[j] = s / (double)k;
        }
        for (size_t i = 0; i < ds->n; i++)
            memcpy(out + i * m, mean, m * sizeof *mean);
        return IPR_OK;
    }
    if (strcmp(v->expected_cost, "registry") != 0)
        return ipr_error_set(IPR_ERR_INVAL, "--expected-cost must be registry, mean-train or auto");
    if (!v->reg)
        return ipr_error_set(IPR_ERR_INVAL, "--expected-cost registry needs a registry (--registry or --router)");
    double all[IPR_MAX_MODELS];
    for (size_t i = 0; i < ds->n; i++) {
        const char *text = ds->prompts[i].text;
        if (v->router) {
            ipr_router_expected_costs(v->router, text, strlen(text), all);
            for (size_t j = 0; j < m; j++)
                out[i * m + j] = all[v->regi[j]];
        } else {
            size_t tokens = ipr_count_tokens(text, strlen(text));
            for (size_t j = 0; j < m; j++)
                out[i * m + j] = ipr_registry_expected_cost(v->reg, (size_t)v->regi[j], tokens);
        }
    }
    return IPR_OK;
}

/* --expected-cost auto: mean-train when the training split has a cost for
 * every candidate, else registry. */
static const char *resolve_auto(const struct eval_run *v)
{
    if (!v->train)
        return "registry";
    for (size_t j = 0; j < v->m; j++) {
        int col = ipr_dataset_model_index(v->train, v->names[j]), any = 0;
        for (size_t i = 0; col >= 0 && i < v->train->n && !any; i++)
            any = !isnan(*ipr_dataset_cost(v->train, i, (size_t)col));
        if (!any)
            return "registry";
    }
    return "mean-train";
}

static int build_expected(struct eval_run *v)
{
    if (strcmp(v->expected_cost, "auto") == 0)
        v->expected_cost = resolve_auto(v);
    v->E = malloc(v->n * v->m * sizeof *v->E);
    if (!v->E)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    return expected_costs(v, v->test, v->E);
}

static int router_predictions(struct eval_run *v, int nt)
{
    size_t R = v->reg->n;
    double *all = malloc(v->n * R * sizeof *all);
    v->P_ipr = malloc(v->n * v->m * sizeof *v->P_ipr);
    if (!all || !v->P_ipr) {
        free(all);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    int rc = run_parallel(v->test, v->router, NULL, R, all, NULL, nt, "predict");
    for (size_t i = 0; rc == IPR_OK && i < v->n; i++)
        for (size_t j = 0; j < v->m; j++) {
            double p = all[i * R + (size_t)v->regi[j]];
            if (!isfinite(p)) {
                rc = ipr_error_set(IPR_ERR_PREDICT, "the router predicted a non-finite quality for %s on prompt %s",
                                   v->names[j], v->test->prompts[i].id);
                break;
            }
            v->P_ipr[i * v->m + j] = p;
        }
    free(all);
    return rc;
}

static void knn_progress(void *user, size_t done, size_t total)
{
    struct cli_progress *pg = user;
    pg->total = total;
    cli_progress_update(pg, done);
}

/* k-NN predictions on the test split from the training split's embeddings. */
static int knn_predictions(struct eval_run *v, const struct ipr_encoder *enc, long fixed_k, int nt)
{
    const struct ipr_dataset *tr = v->train;
    size_t d = enc->dim, m = v->m, nt_rows = tr->n;
    int rc = IPR_ERR_NOMEM;
    float *Xtr = malloc(nt_rows * d * sizeof *Xtr + 1), *Xte = malloc(v->n * d * sizeof *Xte + 1);
    double *tq = malloc(nt_rows * m * sizeof *tq), *tc = malloc(nt_rows * m * sizeof *tc);
    double *tE = malloc(nt_rows * m * sizeof *tE);
    uint8_t *val = malloc(nt_rows + 1);
    v->P_knn = malloc(v->n * m * sizeof *v->P_knn);
    if (!Xtr || !Xte || !tq || !tc || !tE || !val || !v->P_knn) {
        ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto done;
    }
    rc = run_parallel(tr, NULL, enc, d, NULL, Xtr, nt, "embed train");
    if (rc == IPR_OK)
        rc = run_parallel(v->test, NULL, enc, d, NULL, Xte, nt, "embed test");
    if (rc)
        goto done;
    /* Training labels and costs over the candidates; on the validation rows
     * the rule sees expected costs computed as for the test split. A missing
     * training cost is replaced by the model's mean training cost. */
    if ((rc = expected_costs(v, tr, tE)))
        goto done;
    for (size_t j = 0; j < m; j++) {
        int col = ipr_dataset_model_index(tr, v->names[j]);
        double sum = 0, fallback;
        size_t k = 0;
        for (size_t i = 0; col >= 0 && i < nt_rows; i++) {
            double c = *ipr_dataset_cost(tr, i, (size_t)col);
            if (!isnan(c)) { sum += c; k++; }
        }
        if (k) {
            fallback = sum / (double)k;
        } else { /* no training cost at all: the mean expected cost */
            fallback = 0;
            for (size_t i = 0; i < nt_rows; i++)
                fallback += tE[i * m + j] / (double)nt_rows;
        }
        for (size_t i = 0; i < nt_rows; i++) {
            tq[i * m + j] = col >= 0 ? *ipr_dataset_score(tr, i, (size_t)col) : NAN;
            double c = col >= 0 ? *ipr_dataset_cost(tr, i, (size_t)col) : NAN;
            tc[i * m + j] = isnan(c) ? fallback : c;
        }
    }
    if (fixed_k > 0) {
        v->knn_k = (size_t)fixed_k;
    } else {
        for (size_t i = 0; i < nt_rows; i++)
            val[i] = ipr_split_of(tr->prompts[i].id, 0.2, 0.0) == 1;
        size_t n_val = 0;
        for (size_t i = 0; i < nt_rows; i++)
            n_val += val[i];
        if (n_val == 0 || n_val == nt_rows) { /* too few prompts to carve a validation part */
            for (size_t i = 0; i < nt_rows; i++)
                val[i] = i % 5 == 0;
        }
        v->knn_chosen = 1;
        struct cli_progress pg;
        struct ipr_eval_progress cb = { knn_progress, &pg };
        cli_progress_start(&pg, "knn choose k", 0);
        rc = ipr_eval_knn_choose_k(Xtr, tq, tc, tE, val, nt_rows, d, m, eval_knn_cands, 6, v->rule, v->delta,
                                   nt, &v->knn_k, v->knn_val, &cb);
        cli_progress_end(&pg);
        if (rc)
            goto done;
    }
    struct cli_progress pg;
    struct ipr_eval_progress cb = { knn_progress, &pg };
    cli_progress_start(&pg, "knn predict", v->n);
    rc = ipr_eval_knn_predict(Xtr, tq, nt_rows, Xte, v->n, d, m, v->knn_k, nt, v->P_knn, &cb);
    cli_progress_end(&pg);
done:
    free(Xtr); free(Xte); free(tq); free(tc); free(tE); free(val);
    return rc;
}

static int add_curve(struct eval_run *v, const char *name, enum ipr_rule rule, ipr_eval_pred_fn fn,
                     void *user, const double *P_for_qe, const double *taus)
{
    struct eval_entry *e = &v->e[v->n_e];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->rule = rule;
    int rc = ipr_eval_curve_run(v->q, v->c, v->E, v->n, v->m, rule, v->delta, taus, IPR_EVAL_N_TAUS,
                                fn, user, NULL, &e->cv);
    if (rc)
        return ipr_error_wrap(rc, "%s", name);
    ipr_eval_summarise(&v->ref, e->cv.quality, e->cv.cost, e->cv.k, &e->sm);
    if (P_for_qe) {
        rc = ipr_eval_qe_compute(P_for_qe, v->q, v->n, v->m, &e->qe);
        if (rc) {
            ipr_eval_curve_free(&e->cv);
            return rc;
        }
        e->has_qe = 1;
    }
    v->n_e++;
    return IPR_OK;
}

static int add_single_models(struct eval_run *v)
{
    struct eval_entry *e = &v->e[v->n_e];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "single-models");
    e->kind = 1;
    int rc = ipr_eval_curve_alloc(&e->cv, v->m, v->m);
    if (rc)
        return rc;
    for (size_t j = 0; j < v->m; j++) {
        e->cv.tau[j] = NAN;
        e->cv.quality[j] = v->ref.quality[j];
        e->cv.cost[j] = v->ref.cost[j];
        e->cv.share[j * v->m + j] = 1.0;
    }
    ipr_eval_summarise(&v->ref, e->cv.quality, e->cv.cost, v->m, &e->sm);
    v->n_e++;
    return IPR_OK;
}

static void ev_free(struct eval_run *v)
{
    for (int r = 0; r < v->n_e; r++) {
        ipr_eval_curve_free(&v->e[r].cv);
        ipr_eval_qe_free(&v->e[r].qe);
    }
    ipr_eval_ref_free(&v->ref);
    free(v->q); free(v->c); free(v->E); free(v->P_ipr); free(v->P_knn);
    ipr_dataset_free(v->test);
    ipr_dataset_free(v->train);
    if (v->router)
        ipr_router_close(v->router);
    ipr_registry_free(v->reg_owned);
    if (v->enc_owned)
        ipr_encoder_close(v->enc_owned);
}

static const char *base_name(const char *path, char *buf, size_t cap)
{
    const char *b = strrchr(path, '/');
    snprintf(buf, cap, "%s", b ? b + 1 : path);
    char *dot = strstr(buf, ".jsonl");
    if (dot)
        *dot = '\0';
    return buf;
}

int cmd_eval(int argc, char **argv)
{
    struct cli_opt opts[] = {
        { "router", 1, NULL, 0, {0}, 0 }, { "data", 1, NULL, 0, {0}, 0 },
        { "train", 1, NULL, 0, {0}, 0 }, { "registry", 1, NULL, 0, {0}, 0 },
        { "encoder", 1, NULL, 0, {0}, 0 }, { "models", 1, NULL, 0, {0}, 0 },
        { "rule", 1, NULL, 0, {0}, 0 }, { "delta", 1, NULL, 0, {0}, 0 },
        { "json", 1, NULL, 0, {0}, 0 }, { "svg", 1, NULL, 0, {0}, 0 },
        { "log-x", 0, NULL, 0, {0}, 0 }, { "dump", 1, NULL, 0, {0}, 0 },
        { "dump-router", 1, NULL, 0, {0}, 0 }, { "seed", 1, NULL, 0, {0}, 0 },
        { "expected-cost", 1, NULL, 0, {0}, 0 }, { "knn-k", 1, NULL, 0, {0}, 0 },
        { "threads", 1, NULL, 0, {0}, 0 }, { "name", 1, NULL, 0, {0}, 0 },
        { "markdown", 1, NULL, 0, {0}, 0 },
        { "log", 1, NULL, 0, {0}, 0 },
        { "help", 0, NULL, 0, {0}, 0 },
    };
    const size_t no = sizeof opts / sizeof opts[0];
    const char *pos[4];
    int npos;
    int st = cli_start(argc, argv, opts, no, pos, 4, &npos, usage_text);
    if (st >= 0)
        return st;
    /* --log: replay an `ipr serve` decision log (cli_eval_log in cmd_serve.c, docs/serving.md) */
    if (cli_get(opts, no, "log"))
        return cli_eval_log(cli_get(opts, no, "log"), cli_get(opts, no, "rule"), cli_get(opts, no, "delta"),
                            cli_get(opts, no, "json"));
    const char *router_path = cli_get(opts, no, "router"), *data = cli_get(opts, no, "data");
    const char *train = cli_get(opts, no, "train"), *regp = cli_get(opts, no, "registry");
    const char *encp = cli_get(opts, no, "encoder"), *models = cli_get(opts, no, "models");
    const char *json = cli_get(opts, no, "json"), *svg = cli_get(opts, no, "svg");
    const char *dump = cli_get(opts, no, "dump"), *dump_who = cli_get(opts, no, "dump-router");
    if (npos || !data || (!router_path && !regp && !train)) {
        fputs(usage_text, stderr);
        return 2;
    }
    struct eval_run v;
    memset(&v, 0, sizeof v);
    v.seed = 1;
    v.delta = 0;
    long lv = 0, threads = 0, fixed_k = 0;
    const char *s;
    if ((s = cli_get(opts, no, "seed")) && (cli_long(s, &lv) || lv < 0)) {
        fprintf(stderr, "ipr eval: --seed must be a non-negative integer\n");
        return 2;
    }
    if (s)
        v.seed = (uint64_t)lv;
    if ((s = cli_get(opts, no, "threads")) && (cli_long(s, &threads) || threads < 0)) {
        fprintf(stderr, "ipr eval: --threads must be a non-negative integer\n");
        return 2;
    }
    if ((s = cli_get(opts, no, "knn-k")) && (cli_long(s, &fixed_k) || fixed_k < 1)) {
        fprintf(stderr, "ipr eval: --knn-k must be a positive integer\n");
        return 2;
    }
    if ((s = cli_get(opts, no, "delta")) && (cli_double(s, &v.delta) || v.delta < 0)) {
        fprintf(stderr, "ipr eval: --delta must be a number >= 0\n");
        return 2;
    }
    int nt = threads_of(threads);
    int rc = IPR_OK;
    char dsname[128];
    const char *dataset = cli_get(opts, no, "name") ? cli_get(opts, no, "name") : base_name(data, dsname, sizeof dsname);

    if ((rc = ipr_dataset_read(data, &v.test)))
        goto fail;
    if (train && (rc = ipr_dataset_read(train, &v.train)))
        goto fail;
    if (router_path) {
        if ((rc = ipr_router_open(router_path, encp, &v.router)))
            goto fail;
        v.reg = ipr_router_registry(v.router);
        if (v.reg->n > IPR_MAX_MODELS) {
            rc = ipr_error_set(IPR_ERR_LIMIT, "the router has more than %d models", IPR_MAX_MODELS);
            goto fail;
        }
    } else if (regp) {
        if ((rc = ipr_registry_read(regp, &v.reg_owned)))
            goto fail;
        v.reg = v.reg_owned;
    }
    v.rule = router_path ? ipr_router_default_rule(v.router) : IPR_RULE_RANGE;
    if ((s = cli_get(opts, no, "rule")) && (rc = ipr_rule_parse(s, &v.rule)))
        goto fail;
    v.expected_cost = cli_get(opts, no, "expected-cost");
    if (!v.expected_cost)
        v.expected_cost = v.reg ? "registry" : "mean-train";
    if ((rc = pick_candidates(&v, models)))
        goto fail;
    v.n = v.test->n;
    if (v.n == 0) {
        rc = ipr_error_set(IPR_ERR_INVAL, "%s: no prompts", data);
        goto fail;
    }
    if ((rc = build_truth(&v)) || (rc = build_expected(&v)))
        goto fail;
    if ((rc = ipr_eval_ref_compute(v.q, v.c, v.n, v.m, &v.ref)))
        goto fail;

    if (!(v.ref.c_s > v.ref.c_w) || !(v.ref.q_s > v.ref.q_w))
        note(&v, "the strongest model is not dearer and better than the cheapest (e.g. equal prices): "
                 "x/y normalisation, ARQGC and PGR savings are undefined (null)");

    double taus[IPR_EVAL_N_TAUS];
    for (size_t t = 0; t < IPR_EVAL_N_TAUS; t++)
        taus[t] = ipr_eval_tau(t);

    if (v.router) {
        if ((rc = router_predictions(&v, nt)))
            goto fail;
        struct ipr_eval_matrix mx = { v.P_ipr, v.m };
        if ((rc = add_curve(&v, "ipr", v.rule, ipr_eval_pred_matrix, &mx, v.P_ipr, taus)))
            goto fail;
        double dt = ipr_router_default_tau(v.router);
        if (dt >= 0.0 && dt <= 1.0) {
            struct ipr_eval_curve one;
            if ((rc = ipr_eval_curve_run(v.q, v.c, v.E, v.n, v.m, v.rule, v.delta, &dt, 1,
                                         ipr_eval_pred_matrix, &mx, NULL, &one)))
                goto fail;
            v.has_default = 1;
            v.default_tau = dt;
            v.default_q = one.quality[0];
            v.default_c = one.cost[0];
            ipr_eval_curve_free(&one);
        }
        for (int r = 0; r < IPR_RULE_COUNT; r++) {
            char nm[32];
            snprintf(nm, sizeof nm, "ipr-%s", ipr_rule_name((enum ipr_rule)r));
            if ((rc = add_curve(&v, nm, (enum ipr_rule)r, ipr_eval_pred_matrix, &mx, NULL, taus)))
                goto fail;
        }
    }
    const struct ipr_encoder *enc = NULL;
    if (v.train) {
        if (v.router) {
            enc = ipr_router_encoder(v.router);
        } else {
            /* baselines only: --encoder, else the default encoder if present */
            char defp[1024];
            if (encp) {
                if ((rc = ipr_encoder_open(encp, &v.enc_owned)))
                    goto fail;
            } else if (ipr_encoder_default_path(defp, sizeof defp) == IPR_OK && access(defp, R_OK) == 0) {
                if ((rc = ipr_encoder_open(defp, &v.enc_owned)))
                    goto fail;
            }
            enc = v.enc_owned;
        }
    }
    if (enc && v.train->n < 10) {
        note(&v, "k-NN baseline omitted: fewer than 10 training prompts");
    } else if (enc) {
        if ((rc = knn_predictions(&v, enc, fixed_k, nt)))
            goto fail;
        struct ipr_eval_matrix mx = { v.P_knn, v.m };
        if ((rc = add_curve(&v, "knn", v.rule, ipr_eval_pred_matrix, &mx, v.P_knn, taus)))
            goto fail;
    } else if (!enc) {
        note(&v, v.train ? "k-NN baseline omitted: no encoder (give --encoder)"
                         : "k-NN baseline omitted: no training data (give --train)");
    }
    struct ipr_eval_random rnd = { v.seed, v.m };
    if ((rc = add_curve(&v, "random", v.rule, ipr_eval_pred_random, &rnd, NULL, taus)))
        goto fail;
    struct ipr_eval_matrix omx = { v.q, v.m };
    if ((rc = add_curve(&v, "oracle", v.rule, ipr_eval_pred_matrix, &omx, v.q, taus)))
        goto fail;
    if ((rc = add_single_models(&v)))
        goto fail;

    eval_print_table(&v, dataset);
    if (json) {
        char *js = eval_build_json(&v, dataset);
        if (!js) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory writing JSON");
            goto fail;
        }
        rc = eval_write_atomic(json, js, strlen(js));
        free(js);
        if (rc)
            goto fail;
    }
    const char *md = cli_get(opts, no, "markdown");
    if (md) {
        char *txt = eval_build_markdown(&v, dataset);
        if (!txt) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory writing Markdown");
            goto fail;
        }
        rc = eval_write_atomic(md, txt, strlen(txt));
        free(txt);
        if (rc)
            goto fail;
    }
    if (svg && (rc = eval_write_svg(&v, svg, dataset, cli_flag(opts, no, "log-x"))))
        goto fail;
    if (dump && (rc = eval_write_dump(&v, dump, dump_who ? dump_who : (v.router ? "ipr" : "oracle"), taus)))
        goto fail;
    ev_free(&v);
    return 0;
fail:
    ev_free(&v);
    return cli_fail(argv[0], rc);
}
