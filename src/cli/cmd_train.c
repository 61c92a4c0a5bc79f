/*
 * cmd_train.c — `ipr train`: embed the training prompts with the frozen
 * encoder, train the quality estimators, pick the default rule and tau on the
 * validation rows, and write the router bundle.
 */
#include "cli/cli.h"
#include "cli/train_common.h"
#include "ipr/bundle.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/eval.h"
#include "ipr/qe.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void progress_cb(void *arg, size_t done) { cli_progress_update(arg, done); }

static const char usage[] =
    "usage: ipr train --data TRAIN.jsonl [--data MORE.jsonl...] --registry R.json [--registry R2.json...]\n"
    "                 -o ROUTER.ipr [--val VAL.jsonl] [--encoder FILE] [--input full|view|full+view]\n"
    "                 [--models a,b,...] [--rule range|dynmax|difference] [--tau T] [--delta D]\n"
    "                 [--hidden N] [--adapter-hidden N] [--epochs N] [--batch N] [--lr X] [--weight-decay X]\n"
    "                 [--pairwise X] [--dropout X] [--patience N] [--seed N] [--threads N] [--val-frac F]\n"
    "                 [--folds K] [--ensemble N] [--quiet | --verbose]\n"
    "Without --val, a validation part (--val-frac, default 0.1) is carved from the training data by a\n"
    "hash of the id; it drives early stopping, calibration and the default tau.\n"
    "--ensemble N (default 2) trains N estimators with seeds seed, seed+1, ... on the same features;\n"
    "the router averages their predictions.\n"
    "--folds K first cross-validates the whole pipeline (view, embedding, training) on the training\n"
    "data and prints each fold's validation ARQGC and saving; without -o it stops there. Without\n"
    "--rule, the router's default rule is then the one with the best cross-validated ARQGC (range\n"
    "unless another beats it by more than 0.01).\n";

/* Keeps only the registry models named in list (comma-separated). */
static int restrict_models(struct ipr_registry *reg, const char *list)
{
    char *dup = strdup(list);
    if (!dup)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    uint8_t keep[IPR_MAX_MODELS] = { 0 };
    for (char *s = strtok(dup, ","); s; s = strtok(NULL, ",")) {
        int k = ipr_registry_find(reg, s);
        if (k < 0) {
            int rc = ipr_error_set(IPR_ERR_NOTFOUND, "--models: '%s' is not in the registry", s);
            free(dup);
            return rc;
        }
        keep[k] = 1;
    }
    free(dup);
    size_t w = 0;
    for (size_t m = 0; m < reg->n; m++) {
        if (keep[m]) {
            reg->models[w++] = reg->models[m];
            continue;
        }
        free(reg->models[m].name);
        free(reg->models[m].family);
        free(reg->models[m].upstream.base_url);
        free(reg->models[m].upstream.api_key_env);
        free(reg->models[m].upstream.model);
    }
    reg->n = w;
    if (reg->fallback && ipr_registry_find(reg, reg->fallback) < 0) {
        free(reg->fallback);
        reg->fallback = NULL;
    }
    return w ? IPR_OK : ipr_error_set(IPR_ERR_INVAL, "--models leaves no model");
}

static int parse_config(struct cli_opt *o, size_t n, struct ipr_qe_config *cfg)
{
    static const struct { const char *name; int is_int; size_t off; } map[] = {
        { "hidden", 1, offsetof(struct ipr_qe_config, hidden) },
        { "adapter-hidden", 1, offsetof(struct ipr_qe_config, adapter_hidden) },
        { "epochs", 1, offsetof(struct ipr_qe_config, max_epochs) },
        { "batch", 1, offsetof(struct ipr_qe_config, batch) },
        { "patience", 1, offsetof(struct ipr_qe_config, patience) },
        { "threads", 1, offsetof(struct ipr_qe_config, threads) },
        { "lr", 0, offsetof(struct ipr_qe_config, lr) },
        { "weight-decay", 0, offsetof(struct ipr_qe_config, weight_decay) },
        { "pairwise", 0, offsetof(struct ipr_qe_config, pairwise_weight) },
        { "dropout", 0, offsetof(struct ipr_qe_config, dropout) },
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        const char *v = cli_get(o, n, map[i].name);
        if (!v)
            continue;
        double d;
        if (cli_double(v, &d) || d < 0 || (map[i].is_int && (d != floor(d) || d > 1e9)))
            return ipr_error_set(IPR_ERR_INVAL, "--%s: bad value '%s'", map[i].name, v);
        if (map[i].is_int)
            *(int *)((char *)cfg + map[i].off) = (int)d;
        else
            *(double *)((char *)cfg + map[i].off) = d;
    }
    const char *seed = cli_get(o, n, "seed");
    long s;
    if (seed) {
        if (cli_long(seed, &s) || s < 0)
            return ipr_error_set(IPR_ERR_INVAL, "--seed: bad value '%s'", seed);
        cfg->seed = (uint64_t)s;
    }
    return IPR_OK;
}

struct val_figures {
    double arqgc, save_parity, tau; /* over families: mean ARQGC, mean saving, min parity tau */
};

/* The router's figures on one family's validation rows: the rows that label
 * one of its models, among its models only (a multi-pool router routes within
 * a family). Adds {n, models, arqgc, cost_save_at_parity, parity_tau} to o. */
static void family_figures(const double *P, const struct table *t, const uint8_t *in_family,
                           enum ipr_rule rule, double delta, cJSON *o, double *arqgc, double *save, double *tau)
{
    size_t m = t->m, mm = 0, nv = 0, r = 0;
    size_t cols[IPR_MAX_MODELS];
    for (size_t k = 0; k < m; k++)
        if (in_family[k])
            cols[mm++] = k;
    *arqgc = *save = NAN;
    *tau = 0.0;
    double *p = malloc((t->n * mm + 1) * sizeof *p), *q = malloc((t->n * mm + 1) * sizeof *q);
    double *c = malloc((t->n * mm + 1) * sizeof *c), *e = malloc((t->n * mm + 1) * sizeof *e);
    if (!p || !q || !c || !e)
        goto done;
    for (size_t i = 0, vi = 0; i < t->n; i++) {
        if (!t->is_val[i])
            continue;
        int labelled = 0;
        for (size_t j = 0; j < mm; j++)
            labelled |= !isnan(t->y[i * m + cols[j]]);
        if (labelled) {
            for (size_t j = 0; j < mm; j++) {
                size_t k = cols[j];
                double y = t->y[i * m + k], cc = t->c[i * m + k];
                p[r * mm + j] = P[vi * m + k];
                q[r * mm + j] = isnan(y) ? 0.0 : y;
                e[r * mm + j] = t->e[i * m + k];
                c[r * mm + j] = isnan(cc) ? t->e[i * m + k] : cc;
            }
            r++;
        }
        vi++;
    }
    nv = r;
    struct ipr_eval_ref ref;
    if (nv > 0 && ipr_eval_ref_compute(q, c, nv, mm, &ref) == IPR_OK) {
        double taus[IPR_EVAL_N_TAUS];
        for (size_t k = 0; k < IPR_EVAL_N_TAUS; k++)
            taus[k] = ipr_eval_tau(k);
        struct ipr_eval_curve cv;
        struct ipr_eval_matrix mx = { p, mm };
        if (ipr_eval_curve_run(q, c, e, nv, mm, rule, delta, taus, IPR_EVAL_N_TAUS, ipr_eval_pred_matrix, &mx,
                               NULL, &cv) == IPR_OK) {
            struct ipr_eval_summary s;
            ipr_eval_summarise(&ref, cv.quality, cv.cost, cv.k, &s);
            *arqgc = s.arqgc;
            *save = s.save_parity;
            *tau = parity_tau(&cv, &ref);
            ipr_eval_curve_free(&cv);
        }
        ipr_eval_ref_free(&ref);
    }
done:
    cJSON_AddNumberToObject(o, "n", (double)nv);
    cJSON_AddNumberToObject(o, "models", (double)mm);
    cJSON_AddItemToObject(o, "arqgc", isfinite(*arqgc) ? cJSON_CreateNumber(*arqgc) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "cost_save_at_parity", isfinite(*save) ? cJSON_CreateNumber(*save) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "parity_tau", *tau);
    free(p), free(q), free(c), free(e);
}

/* The bundle's averaged predictions for the validation rows of t, in row
 * order: a malloc'd (n_val, m) matrix, or NULL on NOMEM. */
static double *predict_val(const struct ipr_bundle *b, const struct table *t, const float *X, size_t d)
{
    size_t m = t->m, nv = 0;
    for (size_t i = 0; i < t->n; i++)
        nv += t->is_val[i];
    double *P = malloc((nv * m + 1) * sizeof *P);
    float *scratch = malloc((ipr_bundle_scratch_floats(b) + 1) * sizeof *scratch);
    if (P && scratch)
        for (size_t i = 0, r = 0; i < t->n; i++)
            if (t->is_val[i])
                ipr_bundle_predict(b, X + i * d, scratch, P + r++ * m);
    free(scratch);
    if (!scratch) {
        free(P);
        return NULL;
    }
    return P;
}

/* Validation figures of predictions P (predict_val) on the rows with is_val
 * set, per model family (see family_figures), as a JSON object string
 * (malloc'd; NULL on NOMEM). vf gets the mean ARQGC and saving over the
 * families where they are defined and the smallest parity tau (the default tau: every family reaches
 * the quality of its strongest model at or below it on validation). */
static char *validation_report(const double *P, const struct table *t, const struct ipr_registry *reg,
                               enum ipr_rule rule, double delta, const struct ipr_qe_report *rep,
                               struct val_figures *vf)
{
    size_t m = t->m, nv = 0;
    for (size_t i = 0; i < t->n; i++)
        nv += t->is_val[i];
    cJSON *o = cJSON_CreateObject(), *fams = o ? cJSON_AddObjectToObject(o, "families") : NULL;
    char *out = NULL;
    if (!P || !fams)
        goto done;
    cJSON_AddNumberToObject(o, "n", (double)nv);
    cJSON_AddNumberToObject(o, "epochs", rep->epochs);
    cJSON_AddNumberToObject(o, "best_epoch", rep->best_epoch);
    cJSON_AddNumberToObject(o, "train_loss", rep->train_loss);
    cJSON_AddNumberToObject(o, "val_loss", rep->val_loss);
    cJSON_AddNumberToObject(o, "val_mae", rep->val_mae);
    cJSON_AddNumberToObject(o, "train_seconds", rep->seconds);
    uint8_t done_m[IPR_MAX_MODELS] = { 0 };
    double sa = 0, ss = 0, tau = 1.0;
    int na = 0, ns = 0;
    for (size_t k = 0; k < m; k++) {
        if (done_m[k])
            continue;
        const char *fam = reg->models[k].family;
        uint8_t in[IPR_MAX_MODELS] = { 0 };
        for (size_t j = k; j < m; j++) {
            const char *f2 = reg->models[j].family;
            if ((!fam && !f2) || (fam && f2 && strcmp(fam, f2) == 0))
                in[j] = done_m[j] = 1;
        }
        double a, sv, ft;
        cJSON *fo = cJSON_AddObjectToObject(fams, fam ? fam : "(none)");
        if (!fo)
            goto done;
        family_figures(P, t, in, rule, delta, fo, &a, &sv, &ft);
        if (isfinite(a))
            sa += a, na++;
        if (isfinite(sv))
            ss += sv, ns++;
        tau = fmin(tau, ft);
    }
    vf->arqgc = na ? sa / na : NAN;
    vf->save_parity = ns ? ss / ns : NAN;
    vf->tau = nv ? tau : 0.0;
    cJSON_AddItemToObject(o, "arqgc", isfinite(vf->arqgc) ? cJSON_CreateNumber(vf->arqgc) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "cost_save_at_parity",
                          isfinite(vf->save_parity) ? cJSON_CreateNumber(vf->save_parity) : cJSON_CreateNull());
    cJSON_AddNumberToObject(o, "parity_tau", vf->tau);
    out = cJSON_PrintUnformatted(o);
done:
    cJSON_Delete(o);
    return out;
}

/* One fit on the current split of t: learn the view from the training rows
 * (unless input is FULL) into b->view, embed every row into *X (n, *d),
 * reorder t and *X training rows first (table_partition), train n_qe
 * estimators with seeds cfg->seed, cfg->seed + 1, ... into b->qe. rep is the
 * first estimator's report, with the seconds of all. */
static int fit(const struct ipr_encoder *enc, enum ipr_input_mode input, struct table *t,
               const struct ipr_qe_config *cfg, size_t n_qe, int quiet, struct ipr_bundle *b,
               float **X, size_t *d, struct ipr_qe_report *rep, double *t_embed)
{
    int rc = IPR_OK;
    struct ipr_view **view = &b->view;
    *view = NULL, *X = NULL;
    b->n_qe = 0;
    if (input != IPR_INPUT_FULL) {
        size_t nt = 0;
        const char **tx = malloc((t->n + 1) * sizeof *tx);
        size_t *tl = malloc((t->n + 1) * sizeof *tl);
        if (tx && tl) {
            for (size_t i = 0; i < t->n; i++)
                if (!t->is_val[i]) {
                    tx[nt] = t->texts[i];
                    tl[nt++] = strlen(t->texts[i]);
                }
            rc = ipr_view_learn(tx, tl, nt, view);
        } else {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        }
        free(tx), free(tl);
        if (rc != IPR_OK)
            return rc;
    }
    *d = enc->dim * (input == IPR_INPUT_FULL_VIEW ? 2 : 1);
    if (!(*X = malloc((t->n * *d + 1) * sizeof **X)))
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory for %zu x %zu features", t->n, *d);
    struct cli_progress pg;
    double t0 = cli_now();
    cli_progress_start(&pg, "embed", t->n);
    if (quiet)
        pg.enabled = 0;
    rc = ipr_features_batch(enc, *view, input, t->texts, t->n, cfg->threads, *X, progress_cb, &pg);
    cli_progress_end(&pg);
    *t_embed = cli_now() - t0;
    size_t ntr;
    if (rc == IPR_OK && (rc = table_partition(t, *X, *d, &ntr)) == IPR_OK) {
        size_t nva = t->n - ntr;
        struct ipr_qe_data dtr = { ntr, *d, t->m, *X, t->y },
                           dva = { nva, *d, t->m, *X + ntr * *d, t->y + ntr * t->m };
        double secs = 0;
        for (size_t k = 0; k < n_qe && rc == IPR_OK; k++) {
            struct ipr_qe_config ck = *cfg;
            struct ipr_qe_report rk;
            ck.seed = cfg->seed + k;
            if ((rc = ipr_qe_train(&ck, &dtr, nva ? &dva : NULL, &b->qe[k], &rk)) == IPR_OK) {
                b->n_qe = k + 1;
                secs += rk.seconds;
                if (k == 0)
                    *rep = rk;
            }
        }
        rep->seconds = secs;
    }
    return rc;
}

/* --folds K: K-fold cross-validation of the whole pipeline on the training
 * data; prints each fold's validation figures under `rule` and their mean,
 * and the mean ARQGC of every rule. *best receives the rule to default to:
 * `rule` unless another beats it by more than RULE_MARGIN (with two
 * candidates the range rule is never chosen: it degenerates). */
#define RULE_MARGIN 0.01
static int cross_validate(const struct ipr_encoder *enc, const struct ipr_registry *reg, enum ipr_input_mode input,
                          struct table *t, const struct ipr_qe_config *cfg, size_t n_qe, enum ipr_rule rule,
                          double delta, int folds, enum ipr_rule *best)
{
    double sum_a = 0, sum_a2 = 0, sum_s = 0, by_rule[IPR_RULE_COUNT] = { 0 };
    int n_s = 0;
    struct ipr_qe_config quiet_cfg = *cfg;
    quiet_cfg.verbose = 0;
    cfg = &quiet_cfg;
    printf("{\"folds\": [");
    for (int k = 0; k < folds; k++) {
        table_split_fold(t, folds, k);
        struct ipr_bundle fb = { .reg = (struct ipr_registry *)reg };
        float *X;
        size_t d;
        struct ipr_qe_report rep = { 0 };
        double te;
        int rc = fit(enc, input, t, cfg, n_qe, 1, &fb, &X, &d, &rep, &te);
        struct val_figures vf, vr;
        double *P = rc == IPR_OK ? predict_val(&fb, t, X, d) : NULL;
        char *js = P ? validation_report(P, t, reg, rule, delta, &rep, &vf) : NULL;
        for (int r = 0; js && r < IPR_RULE_COUNT; r++) {
            char *jr = validation_report(P, t, reg, (enum ipr_rule)r, delta, &rep, &vr);
            by_rule[r] += jr && isfinite(vr.arqgc) ? vr.arqgc / folds : NAN;
            free(jr);
        }
        free(P);
        ipr_view_free(fb.view);
        for (size_t q = 0; q < fb.n_qe; q++)
            ipr_qe_free(fb.qe[q]);
        free(X);
        if (!js)
            return rc != IPR_OK ? rc : ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        printf("%s%s", k ? ",\n  " : "\n  ", js);
        fflush(stdout);
        free(js);
        sum_a += vf.arqgc, sum_a2 += vf.arqgc * vf.arqgc;
        if (isfinite(vf.save_parity))
            sum_s += vf.save_parity, n_s++;
    }
    *best = rule;
    for (int r = 0; r < IPR_RULE_COUNT; r++)
        if (!(reg->n == 2 && r == IPR_RULE_RANGE) && by_rule[r] > by_rule[*best] + RULE_MARGIN)
            *best = (enum ipr_rule)r;
    double mean = sum_a / folds, sd = sqrt(fmax(0.0, sum_a2 / folds - mean * mean));
    printf("],\n \"arqgc_mean\": %.4f, \"arqgc_sd\": %.4f, \"parity_reached\": %d, \"cost_save_at_parity_mean\": %.4f,\n"
           " \"arqgc_mean_by_rule\": {\"range\": %.4f, \"dynmax\": %.4f, \"difference\": %.4f}, \"chosen_rule\": \"%s\"}\n",
           mean, sd, n_s, n_s ? sum_s / n_s : 0.0, by_rule[0], by_rule[1], by_rule[2], ipr_rule_name(*best));
    return IPR_OK;
}

int cmd_train(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "data", 1, NULL, 1, { 0 }, 0 }, { "registry", 1, NULL, 1, { 0 }, 0 }, { "val", 1, NULL, 1, { 0 }, 0 },
        { "o", 1, NULL, 0, { 0 }, 0 }, { "output", 1, NULL, 0, { 0 }, 0 }, { "encoder", 1, NULL, 0, { 0 }, 0 },
        { "input", 1, NULL, 0, { 0 }, 0 }, { "models", 1, NULL, 0, { 0 }, 0 }, { "rule", 1, NULL, 0, { 0 }, 0 },
        { "tau", 1, NULL, 0, { 0 }, 0 }, { "delta", 1, NULL, 0, { 0 }, 0 }, { "hidden", 1, NULL, 0, { 0 }, 0 },
        { "adapter-hidden", 1, NULL, 0, { 0 }, 0 }, { "epochs", 1, NULL, 0, { 0 }, 0 },
        { "batch", 1, NULL, 0, { 0 }, 0 }, { "lr", 1, NULL, 0, { 0 }, 0 }, { "weight-decay", 1, NULL, 0, { 0 }, 0 },
        { "pairwise", 1, NULL, 0, { 0 }, 0 }, { "dropout", 1, NULL, 0, { 0 }, 0 },
        { "patience", 1, NULL, 0, { 0 }, 0 }, { "seed", 1, NULL, 0, { 0 }, 0 }, { "threads", 1, NULL, 0, { 0 }, 0 },
        { "val-frac", 1, NULL, 0, { 0 }, 0 }, { "quiet", 0, NULL, 0, { 0 }, 0 },
        { "folds", 1, NULL, 0, { 0 }, 0 }, { "verbose", 0, NULL, 0, { 0 }, 0 },
        { "ensemble", 1, NULL, 0, { 0 }, 0 },
    };
    const size_t no = sizeof o / sizeof o[0];
    const char *pos[4], *s;
    int npos, rc;
    int started = cli_start(argc, argv, o, no, pos, 4, &npos, usage);
    if (started >= 0)
        return started;
    const char *outp = cli_get(o, no, "o") ? cli_get(o, no, "o") : cli_get(o, no, "output");
    struct cli_opt *od = &o[0], *orr = &o[1], *ov = &o[2];
    long folds = 0, n_qe = 2;
    if ((s = cli_get(o, no, "ensemble")) && (cli_long(s, &n_qe) || n_qe < 1 || n_qe > IPR_BUNDLE_MAX_QE)) {
        fprintf(stderr, "ipr train: --ensemble must be in [1, %d]\n", IPR_BUNDLE_MAX_QE);
        return 2;
    }
    if ((s = cli_get(o, no, "folds")) && (cli_long(s, &folds) || folds < 2 || folds > 50)) {
        fprintf(stderr, "ipr train: --folds must be in [2, 50]\n");
        return 2;
    }
    if (npos || (!outp && !folds) || !od->n_values || !orr->n_values) {
        fputs(usage, stderr);
        return 2;
    }
    int quiet = cli_flag(o, no, "quiet");
    struct ipr_qe_config cfg;
    ipr_qe_config_default(&cfg);
    cfg.verbose = cli_flag(o, no, "verbose");
    if ((rc = parse_config(o, no, &cfg)) != IPR_OK)
        return cli_fail("train", rc);
    double val_frac = 0.1, tau = -1, delta = 0;
    enum ipr_rule rule = IPR_RULE_RANGE;
    enum ipr_input_mode input = IPR_INPUT_FULL_VIEW;
    if ((s = cli_get(o, no, "val-frac")) && (cli_double(s, &val_frac) || val_frac <= 0 || val_frac >= 1))
        return cli_fail("train", ipr_error_set(IPR_ERR_INVAL, "--val-frac must be in (0,1)"));
    if ((s = cli_get(o, no, "tau")) && (cli_double(s, &tau) || tau < 0 || tau > 1))
        return cli_fail("train", ipr_error_set(IPR_ERR_INVAL, "--tau must be in [0,1]"));
    if ((s = cli_get(o, no, "delta")) && (cli_double(s, &delta) || delta < 0))
        return cli_fail("train", ipr_error_set(IPR_ERR_INVAL, "--delta must be >= 0"));
    if ((s = cli_get(o, no, "input")) && (rc = ipr_input_mode_parse(s, &input)) != IPR_OK)
        return cli_fail("train", rc);

    struct ipr_dataset *ds[32] = { 0 };
    struct ipr_registry *reg = NULL;
    int n_ds = od->n_values + ov->n_values;
    if (n_ds > 32)
        return cli_fail("train", ipr_error_set(IPR_ERR_LIMIT, "at most 32 data files"));
    const char *files[32];
    for (int i = 0; i < od->n_values; i++)
        files[i] = od->values[i];
    for (int i = 0; i < ov->n_values; i++)
        files[od->n_values + i] = ov->values[i];
    if ((rc = load_inputs("train", files, n_ds, orr->values, orr->n_values, ds, &reg)) != IPR_OK)
        return cli_fail("train", rc);

    struct ipr_encoder *enc = NULL;
    struct ipr_bundle b = { 0 };
    struct table t = { 0 };
    float *X = NULL;
    char encpath[4096];
    int ret = 1;
    if ((s = cli_get(o, no, "models")) && (rc = restrict_models(reg, s)) != IPR_OK)
        goto fail;
    if ((s = cli_get(o, no, "rule")))
        rc = ipr_rule_parse(s, &rule);
    else
        rule = reg->n == 2 ? IPR_RULE_DIFFERENCE : IPR_RULE_RANGE; /* range degenerates with two */
    if (rc != IPR_OK)
        goto fail;
    if (!(s = cli_get(o, no, "encoder"))) {
        if ((rc = ipr_encoder_default_path(encpath, sizeof encpath)) != IPR_OK)
            goto fail;
        s = encpath;
    }
    if ((rc = ipr_encoder_open(s, &enc)) != IPR_OK) {
        ipr_error_wrap(rc, "encoder %s (run 'ipr encoder fetch' first)", s);
        goto fail;
    }
    if ((rc = table_build(ds, (size_t)n_ds, (size_t)ov->n_values, reg, !cli_get(o, no, "models"), &t)) != IPR_OK)
        goto fail;
    table_split(&t, val_frac);
    for (size_t m = 0; m < t.m; m++) {
        size_t labelled = 0;
        for (size_t i = 0; i < t.n; i++)
            labelled += !t.is_val[i] && !isnan(t.y[i * t.m + m]);
        if (!labelled) {
            rc = ipr_error_set(IPR_ERR_INVAL, "model '%s' has no label in the training data", reg->models[m].name);
            goto fail;
        }
    }

    if (folds > 0) {
        enum ipr_rule best = rule;
        if ((rc = cross_validate(enc, reg, input, &t, &cfg, (size_t)n_qe, rule, delta, (int)folds, &best)) != IPR_OK)
            goto fail;
        if (!cli_get(o, no, "rule"))
            rule = best;
        if (!outp) {
            ret = 0;
            goto out;
        }
        table_split(&t, val_frac);
    }
    size_t d;
    double t_embed;
    struct ipr_qe_report rep = { 0 };
    b.reg = reg;
    if ((rc = fit(enc, input, &t, &cfg, (size_t)n_qe, quiet, &b, &X, &d, &rep, &t_embed)) != IPR_OK)
        goto fail;
    size_t ntr = 0, nva = 0;
    for (size_t i = 0; i < t.n; i++)
        t.is_val[i] ? nva++ : ntr++;

    b.reg = reg;
    struct ipr_bundle_meta *m = &b.meta;
    snprintf(m->encoder_name, sizeof m->encoder_name, "%s", enc->name);
    m->encoder_checksum = enc->checksum;
    m->encoder_dim = enc->dim;
    m->input = input;
    m->default_rule = rule;
    m->delta = delta;
    m->n_train = ntr;
    m->n_val = nva;
    uint64_t h = 0;
    for (int i = 0; i < n_ds; i++)
        h = h * 0x9E3779B97F4A7C15ull ^ ipr_dataset_checksum(ds[i]);
    m->data_checksum = h;
    time_t now = time(NULL);
    strftime(m->created, sizeof m->created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    struct val_figures vf;
    double *P = predict_val(&b, &t, X, d);
    m->metrics_json = P ? validation_report(P, &t, reg, rule, delta, &rep, &vf) : NULL;
    free(P);
    if (!m->metrics_json) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    m->default_tau = tau >= 0 ? tau : vf.tau;
    if ((rc = ipr_bundle_write(&b, outp)) != IPR_OK)
        goto fail;
    if (!quiet)
        fprintf(stderr, "train: %zu train + %zu validation prompts, %zu models, %zu features; embed %.2fs, train %.2fs\n",
                ntr, nva, t.m, d, t_embed, rep.seconds);
    printf("{\"router\": \"%s\", \"models\": %zu, \"n_train\": %zu, \"n_val\": %zu, \"embed_seconds\": %.3f, "
           "\"validation\": %s}\n", outp, t.m, ntr, nva, t_embed, m->metrics_json);
    ret = 0;
    goto out;
fail:
    ret = cli_fail("train", rc);
out:
    b.reg = NULL;
    free(b.meta.metrics_json);
    for (size_t q = 0; q < b.n_qe; q++)
        ipr_qe_free(b.qe[q]);
    ipr_view_free(b.view);
    ipr_registry_free(reg);
    for (int i = 0; i < n_ds; i++)
        ipr_dataset_free(ds[i]);
    ipr_encoder_close(enc);
    table_free(&t);
    free(X);
    return ret;
}
