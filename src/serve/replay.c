/*
 * replay.c — what a decision log says, for `ipr eval --log DB`.
 *
 * A log holds, per decision, the predictions and expected costs of every
 * candidate, the router's choice, and (where the application sent feedback)
 * the observed quality of the chosen model's answer. That supports three
 * honest summaries, and no more: the qualities of the models that were NOT
 * called are never observed, so the full curves of DESIGN.md §4 need labelled
 * data (`ipr eval --data`).
 *  - the served operating point: mean expected cost, share per model, mean
 *    observed quality over the decisions with feedback;
 *  - calibration: the chosen model's predicted quality against its observed
 *    quality (mean of each, mean absolute error);
 *  - a counterfactual sweep over tau: the logged predictions re-routed by the
 *    rule at each tau give the mean expected cost and mean predicted quality
 *    of what would have been chosen, its shares, the fraction of decisions
 *    that agree with the logged choice, and the observed quality on the
 *    agreeing decisions with feedback (an estimate restricted to those rows,
 *    reported with its count).
 */
#include "ipr/serve.h"
#include "ipr/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

char *ipr_declog_replay_json(const struct ipr_declog_table *t, enum ipr_rule rule, double delta,
                             const double *taus, size_t n_taus)
{
    size_t M = t->n_models;
    cJSON *o = cJSON_CreateObject();
    double *pred = malloc((M + 1) * sizeof *pred), *cost = malloc((M + 1) * sizeof *cost);
    uint8_t *allowed = malloc(M + 1);
    size_t *cnt = calloc(M + 1, sizeof *cnt), *fb_n = calloc(M + 1, sizeof *fb_n);
    double *fb_q = calloc(M + 1, sizeof *fb_q), *fb_p = calloc(M + 1, sizeof *fb_p);
    if (!o || !pred || !cost || !allowed || !cnt || !fb_n || !fb_q || !fb_p)
        goto oom;

    cJSON_AddNumberToObject(o, "n_decisions", (double)t->n);
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (size_t m = 0; m < M; m++)
        cJSON_AddItemToArray(models, cJSON_CreateString(t->models[m]));

    /* served point and calibration */
    double sum_c = 0, sum_q = 0, sum_p = 0, sum_ae = 0;
    size_t n_c = 0, n_fb = 0;
    for (size_t i = 0; i < t->n; i++) {
        int c = t->chosen[i];
        if (isfinite(t->expected_cost[i])) {
            sum_c += t->expected_cost[i];
            n_c++;
        }
        if (c < 0)
            continue;
        cnt[c]++;
        double p = t->pred[i * M + (size_t)c], q = t->quality[i];
        if (isfinite(q) && isfinite(p)) {
            n_fb++;
            sum_q += q;
            sum_p += p;
            sum_ae += fabs(p - q);
            fb_n[c]++;
            fb_q[c] += q;
            fb_p[c] += p;
        }
    }
    cJSON *served = cJSON_AddObjectToObject(o, "served");
    cJSON_AddItemToObject(served, "mean_expected_cost", num(n_c ? sum_c / (double)n_c : NAN));
    cJSON_AddNumberToObject(served, "n_feedback", (double)n_fb);
    cJSON_AddItemToObject(served, "mean_observed_quality", num(n_fb ? sum_q / (double)n_fb : NAN));
    cJSON_AddItemToObject(served, "mean_predicted_quality_of_choice", num(n_fb ? sum_p / (double)n_fb : NAN));
    cJSON_AddItemToObject(served, "calibration_mae", num(n_fb ? sum_ae / (double)n_fb : NAN));
    cJSON *per = cJSON_AddObjectToObject(served, "per_model");
    for (size_t m = 0; m < M; m++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "decisions", (double)cnt[m]);
        cJSON_AddItemToObject(e, "share", num(t->n ? (double)cnt[m] / (double)t->n : NAN));
        cJSON_AddNumberToObject(e, "n_feedback", (double)fb_n[m]);
        cJSON_AddItemToObject(e, "mean_observed_quality", num(fb_n[m] ? fb_q[m] / (double)fb_n[m] : NAN));
        cJSON_AddItemToObject(e, "mean_predicted_quality", num(fb_n[m] ? fb_p[m] / (double)fb_n[m] : NAN));
        cJSON_AddItemToObject(per, t->models[m], e);
    }

    /* counterfactual sweep */
    cJSON_AddStringToObject(o, "rule", ipr_rule_name(rule));
    cJSON *curve = cJSON_AddArrayToObject(o, "curve");
    for (size_t k = 0; k < n_taus; k++) {
        memset(cnt, 0, (M + 1) * sizeof *cnt);
        double sc = 0, sp = 0, sq = 0;
        size_t n_ok = 0, n_agree = 0, n_agree_fb = 0;
        for (size_t i = 0; i < t->n; i++) {
            for (size_t m = 0; m < M; m++) {
                pred[m] = t->pred[i * M + m];
                cost[m] = t->cost[i * M + m];
                allowed[m] = isfinite(pred[m]) && isfinite(cost[m]);
            }
            struct ipr_decision d;
            if (ipr_rule_apply(rule, taus[k], delta, pred, cost, allowed, M, NULL, &d) != IPR_OK || d.model < 0)
                continue;
            n_ok++;
            cnt[d.model]++;
            sc += cost[d.model];
            sp += pred[d.model];
            if (d.model == t->chosen[i]) {
                n_agree++;
                if (isfinite(t->quality[i])) {
                    n_agree_fb++;
                    sq += t->quality[i];
                }
            }
        }
        cJSON *pt = cJSON_CreateObject();
        cJSON_AddNumberToObject(pt, "tau", taus[k]);
        cJSON_AddNumberToObject(pt, "n", (double)n_ok);
        cJSON_AddItemToObject(pt, "mean_expected_cost", num(n_ok ? sc / (double)n_ok : NAN));
        cJSON_AddItemToObject(pt, "mean_predicted_quality", num(n_ok ? sp / (double)n_ok : NAN));
        cJSON_AddItemToObject(pt, "agreement", num(n_ok ? (double)n_agree / (double)n_ok : NAN));
        cJSON_AddNumberToObject(pt, "n_agree_feedback", (double)n_agree_fb);
        cJSON_AddItemToObject(pt, "observed_quality_where_agreeing", num(n_agree_fb ? sq / (double)n_agree_fb : NAN));
        cJSON *share = cJSON_AddObjectToObject(pt, "share");
        for (size_t m = 0; m < M; m++)
            if (cnt[m])
                cJSON_AddNumberToObject(share, t->models[m], (double)cnt[m] / (double)n_ok);
        cJSON_AddItemToArray(curve, pt);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    free(pred), free(cost), free(allowed), free(cnt), free(fb_n), free(fb_q), free(fb_p);
    if (!s)
        ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    return s;
oom:
    cJSON_Delete(o);
    free(pred), free(cost), free(allowed), free(cnt), free(fb_n), free(fb_q), free(fb_p);
    ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    return NULL;
}
