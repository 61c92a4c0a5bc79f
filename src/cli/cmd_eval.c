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
#include "ipr/data.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/eval.h"
#include "ipr/router.h"

#include <cJSON.h>
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
    "  --threads N             worker threads (default: all cores)\n";

/* --- small helpers --- */

static int write_atomic(const char *path, const char *data, size_t len)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return ipr_error_set(IPR_ERR_IO, "%s: cannot write", path);
    }
    free(tmp);
    return IPR_OK;
}

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

/* --- the evaluation state --- */

#define MAX_ROUTERS 8

static const size_t knn_cands[6] = { 5, 10, 20, 50, 100, 200 };

struct entry {
    char name[32];
    int kind;            /* 0 = curve over taus, 1 = single-model points */
    enum ipr_rule rule;
    struct ipr_eval_curve cv;
    struct ipr_eval_summary sm;
    int has_qe;
    struct ipr_eval_qe qe;
};

struct ev {
    /* inputs */
    struct ipr_dataset *test, *train;
    struct ipr_router *router;
    struct ipr_registry *reg_owned;
    const struct ipr_registry *reg;
    struct ipr_encoder *enc_owned;
    /* candidates */
    size_t m;
    int col[IPR_MAX_MODELS];      /* test column of candidate j */
    int regi[IPR_MAX_MODELS];     /* registry index of candidate j, -1 if none */
    const char *names[IPR_MAX_MODELS];
    /* matrices over (test n, m) */
    size_t n;
    double *q, *c, *E, *P_ipr, *P_knn;
    int has_default;              /* the router's own operating point */
    double default_tau, default_q, default_c;
    size_t knn_k;
    int knn_chosen;
    double knn_val[8];
    struct ipr_eval_ref ref;
    struct entry e[MAX_ROUTERS];
    int n_e;
    const char *expected_cost;
    enum ipr_rule rule;
    double delta;
    uint64_t seed;
    char notes[4][200];
    int n_notes;
};

static void note(struct ev *v, const char *msg)
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
static int pick_candidates(struct ev *v, const char *models)
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
static int build_truth(struct ev *v)
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
static int expected_costs(const struct ev *v, const struct ipr_dataset *ds, double *out)
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
static const char *resolve_auto(const struct ev *v)
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

static int build_expected(struct ev *v)
{
    if (strcmp(v->expected_cost, "auto") == 0)
        v->expected_cost = resolve_auto(v);
    v->E = malloc(v->n * v->m * sizeof *v->E);
    if (!v->E)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    return expected_costs(v, v->test, v->E);
}

static int router_predictions(struct ev *v, int nt)
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
static int knn_predictions(struct ev *v, const struct ipr_encoder *enc, long fixed_k, int nt)
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
        v->knn_chosen = 1;
        struct cli_progress pg;
        struct ipr_eval_progress cb = { knn_progress, &pg };
        cli_progress_start(&pg, "knn choose k", 0);
        rc = ipr_eval_knn_choose_k(Xtr, tq, tc, tE, val, nt_rows, d, m, knn_cands, 6, v->rule, v->delta,
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

static int add_curve(struct ev *v, const char *name, enum ipr_rule rule, ipr_eval_pred_fn fn,
                     void *user, const double *P_for_qe, const double *taus)
{
    struct entry *e = &v->e[v->n_e];
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

static int add_single_models(struct ev *v)
{
    struct entry *e = &v->e[v->n_e];
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

/* --- outputs --- */

static cJSON *num_or_null(double x)
{
    return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

static char *build_json(const struct ev *v, const char *dataset)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "dataset", dataset);
    cJSON_AddNumberToObject(root, "n_prompts", (double)v->n);
    cJSON_AddStringToObject(root, "strongest", v->names[v->ref.strongest]);
    cJSON_AddStringToObject(root, "cheapest", v->names[v->ref.cheapest]);
    cJSON *cands = cJSON_AddArrayToObject(root, "candidates");
    for (size_t j = 0; j < v->m; j++)
        cJSON_AddItemToArray(cands, cJSON_CreateString(v->names[j]));
    cJSON_AddStringToObject(root, "rule", ipr_rule_name(v->rule));
    cJSON_AddNumberToObject(root, "delta", v->delta);
    cJSON_AddStringToObject(root, "expected_cost", v->expected_cost);
    cJSON_AddNumberToObject(root, "seed", (double)v->seed);
    cJSON_AddNumberToObject(root, "parity_epsilon", IPR_EVAL_EPS);
    cJSON *sg = cJSON_AddObjectToObject(root, "single");
    for (size_t j = 0; j < v->m; j++) {
        cJSON *o = cJSON_AddObjectToObject(sg, v->names[j]);
        cJSON_AddNumberToObject(o, "quality", v->ref.quality[j]);
        cJSON_AddNumberToObject(o, "cost", v->ref.cost[j]);
    }
    if (v->knn_k) {
        cJSON *kn = cJSON_AddObjectToObject(root, "knn");
        cJSON_AddNumberToObject(kn, "k", (double)v->knn_k);
        cJSON_AddBoolToObject(kn, "k_chosen_on_validation", v->knn_chosen);
        if (v->knn_chosen) {
            cJSON *va = cJSON_AddObjectToObject(kn, "validation_arqgc");
            for (size_t c = 0; c < 6; c++) {
                char key[16];
                snprintf(key, sizeof key, "%zu", knn_cands[c]);
                cJSON_AddItemToObject(va, key, num_or_null(v->knn_val[c]));
            }
        }
    }
    if (v->n_notes) {
        cJSON *nt = cJSON_AddArrayToObject(root, "notes");
        for (int i = 0; i < v->n_notes; i++)
            cJSON_AddItemToArray(nt, cJSON_CreateString(v->notes[i]));
    }
    cJSON *rs = cJSON_AddObjectToObject(root, "routers");
    for (int r = 0; r < v->n_e; r++) {
        const struct entry *e = &v->e[r];
        cJSON *o = cJSON_AddObjectToObject(rs, e->name);
        if (e->kind == 0)
            cJSON_AddStringToObject(o, "rule", ipr_rule_name(e->rule));
        if (strcmp(e->name, "ipr") == 0 && v->has_default) {
            cJSON *dp = cJSON_AddObjectToObject(o, "default_point");
            cJSON_AddNumberToObject(dp, "tau", v->default_tau);
            cJSON_AddNumberToObject(dp, "quality", v->default_q);
            cJSON_AddNumberToObject(dp, "cost", v->default_c);
            cJSON_AddItemToObject(dp, "pgr", num_or_null(ipr_eval_y(&v->ref, v->default_q)));
            cJSON_AddItemToObject(dp, "cost_saving", num_or_null(v->ref.c_s > 0 ? 1.0 - v->default_c / v->ref.c_s : NAN));
        }
        cJSON_AddItemToObject(o, "arqgc", num_or_null(e->sm.arqgc));
        cJSON_AddItemToObject(o, "cost_save_at_parity", num_or_null(e->sm.save_parity));
        cJSON_AddItemToObject(o, "cost_save_at_pgr50", num_or_null(e->sm.save_pgr50));
        cJSON_AddItemToObject(o, "cost_save_at_pgr80", num_or_null(e->sm.save_pgr80));
        cJSON_AddItemToObject(o, "cost_save_at_pgr95", num_or_null(e->sm.save_pgr95));
        cJSON_AddItemToObject(o, "max_quality", num_or_null(e->sm.max_quality));
        cJSON_AddItemToObject(o, "max_quality_cost", num_or_null(e->sm.max_quality_cost));
        if (e->has_qe) {
            cJSON *qe = cJSON_AddObjectToObject(o, "qe");
            cJSON_AddItemToObject(qe, "top1", num_or_null(e->qe.top1));
            cJSON_AddNumberToObject(qe, "top1_prompts", (double)e->qe.top1_n);
            cJSON_AddItemToObject(qe, "spearman", num_or_null(e->qe.spearman));
            cJSON_AddNumberToObject(qe, "spearman_prompts", (double)e->qe.spearman_n);
            cJSON *mae = cJSON_AddObjectToObject(qe, "mae");
            for (size_t j = 0; j < v->m; j++)
                cJSON_AddItemToObject(mae, v->names[j], num_or_null(e->qe.mae[j]));
        }
        cJSON *curve = cJSON_AddArrayToObject(o, "curve");
        for (size_t k = 0; k < e->cv.k; k++) {
            cJSON *p = cJSON_CreateObject();
            if (e->kind == 1)
                cJSON_AddStringToObject(p, "model", v->names[k]);
            cJSON_AddItemToObject(p, "tau", num_or_null(e->cv.tau[k]));
            cJSON_AddNumberToObject(p, "quality", e->cv.quality[k]);
            cJSON_AddNumberToObject(p, "cost", e->cv.cost[k]);
            cJSON *sh = cJSON_AddObjectToObject(p, "share");
            for (size_t j = 0; j < v->m; j++)
                cJSON_AddNumberToObject(sh, v->names[j], e->cv.share[k * v->m + j]);
            cJSON_AddItemToArray(curve, p);
        }
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

static void fmt_save(char *buf, size_t cap, double s)
{
    if (isnan(s))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.1f%%", 100.0 * s);
}

static void print_table(const struct ev *v, const char *dataset)
{
    printf("ipr eval: %s — %zu prompts, %zu candidates, rule %s, expected cost %s\n", dataset, v->n,
           v->m, ipr_rule_name(v->rule), v->expected_cost);
    printf("strongest %s (quality %.3f, $%.6f/prompt); cheapest %s (quality %.3f, $%.6f/prompt)\n",
           v->names[v->ref.strongest], v->ref.q_s, v->ref.c_s, v->names[v->ref.cheapest], v->ref.q_w, v->ref.c_w);
    printf("\n%-16s %6s %8s %12s %8s %8s %8s %8s %6s %8s\n", "router", "ARQGC", "max Q", "cost@maxQ",
           "parity", "PGR95", "PGR80", "PGR50", "top-1", "spearman");
    for (int r = 0; r < v->n_e; r++) {
        const struct entry *e = &v->e[r];
        char a[16], b[16], c[16], d[16], t1[16] = "", sp[16] = "";
        fmt_save(a, sizeof a, e->sm.save_parity);
        fmt_save(b, sizeof b, e->sm.save_pgr95);
        fmt_save(c, sizeof c, e->sm.save_pgr80);
        fmt_save(d, sizeof d, e->sm.save_pgr50);
        if (e->has_qe) {
            snprintf(t1, sizeof t1, "%.3f", e->qe.top1);
            snprintf(sp, sizeof sp, "%.3f", e->qe.spearman);
        }
        char name[40];
        if (strcmp(e->name, "knn") == 0)
            snprintf(name, sizeof name, "knn (k=%zu)", v->knn_k);
        else
            snprintf(name, sizeof name, "%s", e->name);
        char ar[16];
        if (isnan(e->sm.arqgc))
            snprintf(ar, sizeof ar, "-");
        else
            snprintf(ar, sizeof ar, "%.3f", e->sm.arqgc);
        printf("%-16s %6s %8.3f %12.6f %8s %8s %8s %8s %6s %8s\n", name, ar, e->sm.max_quality,
               e->sm.max_quality_cost, a, b, c, d, t1, sp);
    }
    if (v->has_default)
        printf("ipr at its default tau %.3g (%s rule): quality %.3f (%.1f%% of the strongest's), $%.6f/prompt "
               "(%.1f%% cheaper than the strongest)\n", v->default_tau, ipr_rule_name(v->rule), v->default_q,
               100.0 * v->default_q / v->ref.q_s, v->default_c, 100.0 * (1.0 - v->default_c / v->ref.c_s));
    printf("(savings: 1 - cost/cost of the strongest at the cheapest point reaching its quality, or\n"
           " 50/80/95%% of the quality gap; - = not reached; ARQGC: area under the normalised curve)\n");
    for (int i = 0; i < v->n_notes; i++)
        printf("note: %s\n", v->notes[i]);
}

/* --markdown: the table as a Markdown section, for docs/results/results.md. */
static char *build_markdown(const struct ev *v, const char *dataset)
{
    size_t cap = 8192 + (size_t)v->n_e * 512 + v->m * 128, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
#define MD(...) do { int k_ = snprintf(out + len, cap - len, __VA_ARGS__); \
                     if (k_ > 0) len += (size_t)k_ < cap - len ? (size_t)k_ : cap - len - 1; } while (0)
    MD("### %s\n\n%zu test prompts; %zu candidates: ", dataset, v->n, v->m);
    for (size_t j = 0; j < v->m; j++)
        MD("%s`%s`", j ? ", " : "", v->names[j]);
    MD(".\nStrongest `%s` (quality %.3f, $%.6f per prompt); cheapest `%s` (quality %.3f, $%.6f).\n"
       "Rule `%s` for `ipr` and the baselines; expected cost: %s.\n\n",
       v->names[v->ref.strongest], v->ref.q_s, v->ref.c_s, v->names[v->ref.cheapest], v->ref.q_w, v->ref.c_w,
       ipr_rule_name(v->rule), strcmp(v->expected_cost, "mean-train") == 0 ? "mean training cost per model"
                                                                           : "registry estimate per prompt");
    MD("| router | ARQGC | max quality | its cost ($/prompt) | saving at parity | PGR 95 %% | PGR 80 %% | PGR 50 %% | top-1 | Spearman |\n"
       "|---|---|---|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < v->n_e; r++) {
        const struct entry *e = &v->e[r];
        char a[16], b[16], c[16], d[16], ar[16], t1[16] = "", sp[16] = "", name[48];
        fmt_save(a, sizeof a, e->sm.save_parity);
        fmt_save(b, sizeof b, e->sm.save_pgr95);
        fmt_save(c, sizeof c, e->sm.save_pgr80);
        fmt_save(d, sizeof d, e->sm.save_pgr50);
        snprintf(ar, sizeof ar, isnan(e->sm.arqgc) ? "-" : "%.3f", e->sm.arqgc);
        const double sv[4] = { e->sm.save_parity, e->sm.save_pgr95, e->sm.save_pgr80, e->sm.save_pgr50 };
        char *cells[4] = { a, b, c, d };
        for (int k = 0; k < 4; k++)
            if (isnan(sv[k]))
                snprintf(cells[k], 16, "not reached");
        if (e->has_qe) {
            snprintf(t1, sizeof t1, "%.3f", e->qe.top1);
            snprintf(sp, sizeof sp, "%.3f", e->qe.spearman);
        }
        if (strncmp(e->name, "ipr-", 4) == 0 && v->router && e->rule == v->rule)
            continue; /* the same curve as the "ipr" row */
        if (strcmp(e->name, "ipr") == 0)
            snprintf(name, sizeof name, "**ipr** (%s rule)", ipr_rule_name(e->rule));
        else if (strncmp(e->name, "ipr-", 4) == 0)
            snprintf(name, sizeof name, "ipr, %s rule", ipr_rule_name(e->rule));
        else if (strcmp(e->name, "knn") == 0)
            snprintf(name, sizeof name, "k-NN (k = %zu)", v->knn_k);
        else if (strcmp(e->name, "single-models") == 0)
            snprintf(name, sizeof name, "best single model per budget");
        else
            snprintf(name, sizeof name, "%s", e->name);
        MD("| %s | %s | %.3f | %.6f | %s | %s | %s | %s | %s | %s |\n", name, ar, e->sm.max_quality,
           e->sm.max_quality_cost, a, b, c, d, t1, sp);
    }
    if (v->has_default)
        MD("\nAt its default tau (%.3g, chosen at training time) the router reaches quality %.3f "
           "(%.1f %% of the strongest model's) at $%.6f per prompt (%.1f %% cheaper than the strongest).\n",
           v->default_tau, v->default_q, 100.0 * v->default_q / v->ref.q_s, v->default_c,
           100.0 * (1.0 - v->default_c / v->ref.c_s));
    for (int i = 0; i < v->n_notes; i++)
        MD("\nNote: %s.\n", v->notes[i]);
    MD("\n");
#undef MD
    return out;
}

/* --dump: one line per (prompt, tau) for the chosen policy (all rules for ipr). */
static int write_dump(const struct ev *v, const char *path, const char *who, const double *taus)
{
    const double *P = NULL;
    struct ipr_eval_random rnd = { v->seed, v->m };
    if (strcmp(who, "ipr") == 0) P = v->P_ipr;
    else if (strcmp(who, "knn") == 0) P = v->P_knn;
    else if (strcmp(who, "oracle") == 0) P = v->q;
    else if (strcmp(who, "random") != 0)
        return ipr_error_set(IPR_ERR_INVAL, "--dump-router must be ipr, oracle, random or knn");
    if (strcmp(who, "random") != 0 && !P)
        return ipr_error_set(IPR_ERR_INVAL, "--dump-router %s: that router was not evaluated", who);
    int all_rules = strcmp(who, "ipr") == 0;
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (!tmp)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    snprintf(tmp, pl + 16, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return ipr_error_set(IPR_ERR_IO, "%s: cannot create", path);
    }
    /* Model names as JSON strings, escaped once. */
    char *jn[IPR_MAX_MODELS];
    for (size_t j = 0; j < v->m; j++) {
        cJSON *s = cJSON_CreateString(v->names[j]);
        jn[j] = cJSON_PrintUnformatted(s);
        cJSON_Delete(s);
    }
    struct cli_progress pg;
    size_t n_rules = all_rules ? IPR_RULE_COUNT : 1;
    cli_progress_start(&pg, "dump", n_rules * IPR_EVAL_N_TAUS);
    int rc = IPR_OK;
    double pred[IPR_MAX_MODELS];
    for (size_t r = 0; r < n_rules && rc == IPR_OK; r++) {
        enum ipr_rule rule = all_rules ? (enum ipr_rule)r : v->rule;
        for (size_t t = 0; t < IPR_EVAL_N_TAUS && rc == IPR_OK; t++) {
            for (size_t i = 0; i < v->n; i++) {
                if (P)
                    memcpy(pred, P + i * v->m, v->m * sizeof *pred);
                else
                    ipr_eval_pred_random(&rnd, i, t, pred);
                struct ipr_decision d;
                rc = ipr_rule_apply(rule, taus[t], v->delta, pred, v->E + i * v->m, NULL, v->m, NULL, &d);
                if (rc)
                    break;
                cJSON *ids = cJSON_CreateString(v->test->prompts[i].id);
                char *id = cJSON_PrintUnformatted(ids);
                cJSON_Delete(ids);
                fprintf(f, "{\"id\":%s,\"tau\":%.15g,\"rule\":\"%s\",\"model\":%s,\"pred\":{", id ? id : "null",
                        taus[t], ipr_rule_name(rule), jn[d.model]);
                free(id);
                for (size_t j = 0; j < v->m; j++)
                    fprintf(f, "%s%s:%.17g", j ? "," : "", jn[j], pred[j]);
                fputs("}}\n", f);
            }
            cli_progress_update(&pg, r * IPR_EVAL_N_TAUS + t + 1);
        }
    }
    cli_progress_end(&pg);
    for (size_t j = 0; j < v->m; j++)
        free(jn[j]);
    int ok = rc == IPR_OK && fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return rc ? rc : ipr_error_set(IPR_ERR_IO, "%s: cannot write", path);
    }
    free(tmp);
    return IPR_OK;
}

static const char *short_name(const char *name)
{
    const char *s = strrchr(name, '/');
    return s ? s + 1 : name;
}

/* The "best single model per budget" frontier in (cost, quality): the upper
 * concave envelope of the single models' points from the cheapest to the
 * strongest (mixing two models at random lies on the segment between them),
 * sampled densely so it also draws correctly on a log-scale cost axis. */
#define ENV_SAMPLES 40
static size_t single_envelope(const struct ev *v, double *ec, double *eq, size_t cap)
{
    size_t m = v->m, idx[IPR_MAX_MODELS], h = 0, n = 0;
    for (size_t j = 0; j < m; j++)
        idx[j] = j;
    for (size_t i = 1; i < m; i++) /* sort by cost, then quality */
        for (size_t j = i; j > 0; j--) {
            size_t a = idx[j - 1], b = idx[j];
            if (v->ref.cost[a] < v->ref.cost[b] ||
                (v->ref.cost[a] == v->ref.cost[b] && v->ref.quality[a] <= v->ref.quality[b]))
                break;
            idx[j - 1] = b;
            idx[j] = a;
        }
    size_t hull[IPR_MAX_MODELS];
    double best = -INFINITY;
    for (size_t k = 0; k < m; k++) {
        size_t j = idx[k];
        if (v->ref.quality[j] <= best)
            continue; /* dominated: dearer and no better */
        best = v->ref.quality[j];
        while (h >= 2) {
            size_t o = hull[h - 2], a = hull[h - 1];
            double cross = (v->ref.cost[a] - v->ref.cost[o]) * (v->ref.quality[j] - v->ref.quality[o]) -
                           (v->ref.quality[a] - v->ref.quality[o]) * (v->ref.cost[j] - v->ref.cost[o]);
            if (cross < 0)
                break;
            h--;
        }
        hull[h++] = j;
    }
    for (size_t k = 0; k + 1 < h && n + ENV_SAMPLES < cap; k++)
        for (int t = 0; t < ENV_SAMPLES; t++) {
            double f = (double)t / ENV_SAMPLES;
            ec[n] = v->ref.cost[hull[k]] + f * (v->ref.cost[hull[k + 1]] - v->ref.cost[hull[k]]);
            eq[n] = v->ref.quality[hull[k]] + f * (v->ref.quality[hull[k + 1]] - v->ref.quality[hull[k]]);
            n++;
        }
    if (h >= 1 && n < cap) {
        ec[n] = v->ref.cost[hull[h - 1]];
        eq[n] = v->ref.quality[hull[h - 1]];
        n++;
    }
    return n;
}

static int write_svg(const struct ev *v, const char *path, const char *dataset, int log_x)
{
    double env_c[IPR_MAX_MODELS * ENV_SAMPLES + 1], env_q[IPR_MAX_MODELS * ENV_SAMPLES + 1];
    struct ipr_plot_series s[MAX_ROUTERS + 2];
    char names[MAX_ROUTERS + 2][64];
    const char *labels[IPR_MAX_MODELS];
    size_t ns = 0;
    for (size_t j = 0; j < v->m; j++)
        labels[j] = short_name(v->names[j]);
    static const char *const ipr_colors[3] = { "#d62728", "#ff7f0e", "#9467bd" };
    /* Legend order (and drawing order, reversed: the first is on top): the
     * router's curves, k-NN, oracle, single models, random. */
    static const char *const order[] = { "ipr", "ipr-range", "ipr-dynmax", "ipr-difference", "knn",
                                         "oracle", "single-models", "random" };
    int ipr_i = 0;
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
        for (int r = 0; r < v->n_e; r++) {
            const struct entry *e = &v->e[r];
            if (strcmp(e->name, order[o]) != 0)
                continue;
            struct ipr_plot_series x = { .name = names[ns], .n = e->cv.k, .cost = e->cv.cost,
                                         .quality = e->cv.quality, .style = IPR_PLOT_LINE_POINTS };
            if (strcmp(e->name, "ipr") == 0) {
                snprintf(names[ns], sizeof names[ns], "ipr (%s rule)", ipr_rule_name(e->rule));
                x.color = ipr_colors[ipr_i++ % 3];
            } else if (strncmp(e->name, "ipr-", 4) == 0) {
                if (v->router && e->rule == v->rule)
                    continue; /* the same curve as "ipr" */
                snprintf(names[ns], sizeof names[ns], "ipr, %s rule", ipr_rule_name(e->rule));
                x.color = ipr_colors[ipr_i++ % 3];
                x.dashed = 1;
            } else if (strcmp(e->name, "knn") == 0) {
                snprintf(names[ns], sizeof names[ns], "k-NN router (k = %zu)", v->knn_k);
                x.color = "#1f77b4";
            } else if (strcmp(e->name, "oracle") == 0) {
                snprintf(names[ns], sizeof names[ns], "oracle");
                x.color = "#2ca02c";
            } else if (e->kind == 1) {
                snprintf(names[ns], sizeof names[ns], "single models");
                x.color = "#444444";
                x.style = IPR_PLOT_POINTS;
                x.labels = labels;
                s[ns++] = x;
                struct ipr_plot_series env = { .name = names[ns], .color = "#777777", .style = IPR_PLOT_LINE,
                                               .dashed = 1, .cost = env_c, .quality = env_q };
                env.n = single_envelope(v, env_c, env_q, sizeof env_c / sizeof env_c[0]);
                snprintf(names[ns], sizeof names[ns], "best single model per budget");
                x = env;
            } else {
                snprintf(names[ns], sizeof names[ns], "random (one point per tau)");
                x.color = "#bdbdbd";
                x.style = IPR_PLOT_POINTS;
                x.radius = 3.0;
            }
            s[ns++] = x;
        }
    char title[160], sub[240], hl[160];
    snprintf(title, sizeof title, "Quality vs cost on %s", dataset);
    snprintf(sub, sizeof sub, "%zu test prompts, %zu candidate models; tau = 0 … 1 in steps of 0.01; "
             "baselines use the %s rule; expected cost: %s", v->n, v->m, ipr_rule_name(v->rule),
             strcmp(v->expected_cost, "mean-train") == 0 ? "mean training cost" : "registry estimate");
    snprintf(hl, sizeof hl, "strongest model's quality (%s)", short_name(v->names[v->ref.strongest]));
    struct ipr_plot plot = { .title = title, .subtitle = sub, .log_x = log_x, .hline = v->ref.q_s,
                             .hline_label = hl, .n_series = ns, .series = s };
    return ipr_plot_svg_write(&plot, path);
}

static void ev_free(struct ev *v)
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
        { "help", 0, NULL, 0, {0}, 0 },
    };
    const size_t no = sizeof opts / sizeof opts[0];
    const char *pos[4];
    int npos;
    if (cli_parse(argc, argv, opts, no, pos, 4, &npos))
        return 2;
    if (cli_flag(opts, no, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *router_path = cli_get(opts, no, "router"), *data = cli_get(opts, no, "data");
    const char *train = cli_get(opts, no, "train"), *regp = cli_get(opts, no, "registry");
    const char *encp = cli_get(opts, no, "encoder"), *models = cli_get(opts, no, "models");
    const char *json = cli_get(opts, no, "json"), *svg = cli_get(opts, no, "svg");
    const char *dump = cli_get(opts, no, "dump"), *dump_who = cli_get(opts, no, "dump-router");
    if (npos || !data || (!router_path && !regp && !train)) {
        fputs(usage_text, stderr);
        return 2;
    }
    struct ev v;
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
    if (enc) {
        if ((rc = knn_predictions(&v, enc, fixed_k, nt)))
            goto fail;
        struct ipr_eval_matrix mx = { v.P_knn, v.m };
        if ((rc = add_curve(&v, "knn", v.rule, ipr_eval_pred_matrix, &mx, v.P_knn, taus)))
            goto fail;
    } else {
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

    print_table(&v, dataset);
    if (json) {
        char *js = build_json(&v, dataset);
        if (!js) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory writing JSON");
            goto fail;
        }
        rc = write_atomic(json, js, strlen(js));
        free(js);
        if (rc)
            goto fail;
    }
    const char *md = cli_get(opts, no, "markdown");
    if (md) {
        char *txt = build_markdown(&v, dataset);
        if (!txt) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory writing Markdown");
            goto fail;
        }
        rc = write_atomic(md, txt, strlen(txt));
        free(txt);
        if (rc)
            goto fail;
    }
    if (svg && (rc = write_svg(&v, svg, dataset, cli_flag(opts, no, "log-x"))))
        goto fail;
    if (dump && (rc = write_dump(&v, dump, dump_who ? dump_who : (v.router ? "ipr" : "oracle"), taus)))
        goto fail;
    ev_free(&v);
    return 0;
fail:
    ev_free(&v);
    return cli_fail(argv[0], rc);
}
