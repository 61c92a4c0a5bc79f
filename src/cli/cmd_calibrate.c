/*
 * cmd_calibrate.c — `ipr calibrate`: finds the tau that meets a target on a
 * labelled (validation) set, reports what it achieves there, and optionally
 * writes a copy of the router with that tau as its default.
 *
 * Targets (DESIGN.md §3):
 *   cost=USD            highest quality whose mean cost per prompt <= USD
 *   share:MODEL=F       highest quality sending at most a fraction F of calls to MODEL
 *   quality=F           cheapest point whose quality >= F x the strongest model's
 * The search runs the router's rule over tau = 0, 0.001, ..., 1. Costs are the
 * data's where present, else the registry's expected costs.
 */
#include "cli/cli.h"
#include "ipr/bundle.h"
#include "ipr/err.h"
#include "ipr/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID 1001

static const char usage[] =
    "usage: ipr calibrate --router ROUTER.ipr --data VAL.jsonl --target cost=USD|share:MODEL=F|quality=F\n"
    "                     [--rule range|dynmax|difference] [--delta D] [--encoder FILE] [-o NEW.ipr]\n";

enum target_kind { T_COST, T_SHARE, T_QUALITY };

static int parse_target(const char *s, const struct ipr_registry *reg, enum target_kind *kind, int *model,
                        double *value)
{
    const char *eq = strrchr(s, '=');
    if (!eq || cli_double(eq + 1, value) || *value < 0)
        return ipr_error_set(IPR_ERR_INVAL, "--target '%s': expected cost=USD, share:MODEL=F or quality=F", s);
    if (strncmp(s, "cost=", 5) == 0) {
        *kind = T_COST;
        return IPR_OK;
    }
    if (strncmp(s, "quality=", 8) == 0) {
        *kind = T_QUALITY;
        return *value <= 1.5 ? IPR_OK : ipr_error_set(IPR_ERR_INVAL, "--target quality=F: F is a fraction (e.g. 0.95)");
    }
    if (strncmp(s, "share:", 6) == 0) {
        char name[256];
        size_t len = (size_t)(eq - (s + 6));
        if (len == 0 || len >= sizeof name)
            return ipr_error_set(IPR_ERR_INVAL, "--target '%s': bad model name", s);
        memcpy(name, s + 6, len);
        name[len] = '\0';
        if ((*model = ipr_registry_find(reg, name)) < 0)
            return ipr_error_set(IPR_ERR_NOTFOUND, "--target: unknown model '%s'", name);
        *kind = T_SHARE;
        return *value <= 1 ? IPR_OK : ipr_error_set(IPR_ERR_INVAL, "--target share: F must be in [0,1]");
    }
    return ipr_error_set(IPR_ERR_INVAL, "--target '%s': expected cost=USD, share:MODEL=F or quality=F", s);
}

int cmd_calibrate(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "router", 1, NULL, 0, { 0 }, 0 }, { "data", 1, NULL, 0, { 0 }, 0 }, { "target", 1, NULL, 0, { 0 }, 0 },
        { "rule", 1, NULL, 0, { 0 }, 0 }, { "delta", 1, NULL, 0, { 0 }, 0 }, { "encoder", 1, NULL, 0, { 0 }, 0 },
        { "o", 1, NULL, 0, { 0 }, 0 }, { "threads", 1, NULL, 0, { 0 }, 0 },
    };
    const size_t no = sizeof o / sizeof o[0];
    const char *pos[2], *s;
    int npos, rc, ret = 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = "--o";
    int started = cli_start(argc, argv, o, no, pos, 2, &npos, usage);
    if (started >= 0)
        return started;
    const char *rpath = cli_get(o, no, "router"), *dpath = cli_get(o, no, "data"), *tgt = cli_get(o, no, "target");
    if (npos || !rpath || !dpath || !tgt) {
        fputs(usage, stderr);
        return 2;
    }
    struct ipr_router *r = NULL;
    struct ipr_dataset *ds = NULL;
    double *P = NULL, *q = NULL, *c = NULL, *E = NULL;
    const char **texts = NULL;
    struct ipr_eval_curve cv = { 0 };
    struct ipr_eval_ref ref = { 0 };
    double delta = 0, target;
    long threads = 0;
    enum target_kind kind = T_COST;
    int tmodel = -1;
    if ((s = cli_get(o, no, "delta")) && (cli_double(s, &delta) || delta < 0))
        return cli_fail("calibrate", ipr_error_set(IPR_ERR_INVAL, "--delta must be >= 0"));
    if ((s = cli_get(o, no, "threads")) && (cli_long(s, &threads) || threads < 0 || threads > 64))
        return cli_fail("calibrate", ipr_error_set(IPR_ERR_INVAL, "--threads: bad value"));
    if ((rc = ipr_router_open(rpath, cli_get(o, no, "encoder"), &r)) != IPR_OK)
        goto fail;
    const struct ipr_registry *reg = ipr_router_registry(r);
    enum ipr_rule rule = ipr_router_default_rule(r);
    if ((s = cli_get(o, no, "rule")) && (rc = ipr_rule_parse(s, &rule)) != IPR_OK)
        goto fail;
    if ((rc = parse_target(tgt, reg, &kind, &tmodel, &target)) != IPR_OK || (rc = ipr_dataset_read(dpath, &ds)) != IPR_OK)
        goto fail;

    /* Route among the registry models the data labels somewhere. */
    size_t m = reg->n, n = ds->n, mm = 0;
    int col[IPR_MAX_MODELS], keep[IPR_MAX_MODELS];
    for (size_t k = 0; k < m; k++)
        if ((col[k] = ipr_dataset_model_index(ds, reg->models[k].name)) >= 0)
            keep[mm++] = (int)k;
    if (mm == 0) {
        rc = ipr_error_set(IPR_ERR_INVAL, "%s labels none of the router's models", dpath);
        goto fail;
    }
    P = malloc((n * m + 1) * sizeof *P);
    q = malloc((n * mm + 1) * sizeof *q);
    c = malloc((n * mm + 1) * sizeof *c);
    E = malloc((n * mm + 1) * sizeof *E);
    texts = malloc((n + 1) * sizeof *texts);
    if (!P || !q || !c || !E || !texts) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        texts[i] = ds->prompts[i].text;
    if ((rc = ipr_router_predict_batch(r, texts, n, (int)threads, P)) != IPR_OK)
        goto fail;
    double cost_all[IPR_MAX_MODELS];
    for (size_t i = 0; i < n; i++) {
        ipr_router_expected_costs(r, texts[i], strlen(texts[i]), cost_all);
        for (size_t j = 0; j < mm; j++) {
            int k = keep[j];
            double y = *ipr_dataset_score(ds, i, (size_t)col[k]), cc = *ipr_dataset_cost(ds, i, (size_t)col[k]);
            q[i * mm + j] = isnan(y) ? 0.0 : y;
            E[i * mm + j] = cost_all[k];
            c[i * mm + j] = isnan(cc) ? cost_all[k] : cc;
            P[i * mm + j] = P[i * m + k]; /* compact in place: j <= k and rows ascend */
        }
    }
    double taus[GRID];
    for (size_t k = 0; k < GRID; k++)
        taus[k] = (double)k / (GRID - 1);
    struct ipr_eval_matrix mx = { P, mm };
    if ((rc = ipr_eval_ref_compute(q, c, n, mm, &ref)) != IPR_OK ||
        (rc = ipr_eval_curve_run(q, c, E, n, mm, rule, delta, taus, GRID, ipr_eval_pred_matrix, &mx, NULL, &cv)) != IPR_OK)
        goto fail;
    int tm = -1;
    for (size_t j = 0; j < mm; j++)
        if (keep[j] == tmodel)
            tm = (int)j;
    if (kind == T_SHARE && tm < 0) {
        rc = ipr_error_set(IPR_ERR_INVAL, "%s has no labels for the --target model", dpath);
        goto fail;
    }
    long best = -1;
    for (size_t k = 0; k < cv.k; k++) {
        int ok = kind == T_COST    ? cv.cost[k] <= target
               : kind == T_SHARE   ? cv.share[k * mm + (size_t)tm] <= target + 1e-12
                                   : cv.quality[k] >= target * ref.q_s - 1e-12;
        if (!ok)
            continue;
        if (best < 0 || (kind == T_QUALITY ? cv.cost[k] < cv.cost[best] : cv.quality[k] > cv.quality[best]))
            best = (long)k;
    }
    if (best < 0) {
        rc = ipr_error_set(IPR_ERR_NOTFOUND, "no tau meets %s on %s (cheapest point costs $%.6g, best quality %.4f)",
                           tgt, dpath, cv.cost[cv.k - 1], cv.quality[0]);
        goto fail;
    }
    printf("{\"target\": \"%s\", \"rule\": \"%s\", \"tau\": %.3f, \"quality\": %.6f, \"cost\": %.8g, "
           "\"strongest\": \"%s\", \"strongest_quality\": %.6f, \"strongest_cost\": %.8g, \"share\": {",
           tgt, ipr_rule_name(rule), cv.tau[best], cv.quality[best], cv.cost[best],
           reg->models[keep[ref.strongest]].name, ref.q_s, ref.c_s);
    for (size_t j = 0; j < mm; j++)
        printf("%s\"%s\": %.4f", j ? ", " : "", reg->models[keep[j]].name, cv.share[(size_t)best * mm + j]);
    printf("}}\n");
    if ((s = cli_get(o, no, "o"))) {
        struct ipr_bundle *b;
        if ((rc = ipr_bundle_read(rpath, &b)) != IPR_OK)
            goto fail;
        b->meta.default_tau = cv.tau[best];
        b->meta.default_rule = rule;
        b->meta.delta = delta;
        rc = ipr_bundle_write(b, s);
        ipr_bundle_free(b);
        if (rc != IPR_OK)
            goto fail;
    }
    ret = 0;
    goto out;
fail:
    ret = cli_fail("calibrate", rc);
out:
    ipr_eval_curve_free(&cv);
    ipr_eval_ref_free(&ref);
    ipr_router_close(r);
    ipr_dataset_free(ds);
    free(P), free(q), free(c), free(E), free(texts);
    return ret;
}
