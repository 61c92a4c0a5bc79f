/*
 * eval_out.c — the outputs of `ipr eval`: the stdout table, --json (DESIGN.md
 * §5 schema plus extras documented in docs/evaluation.md), --markdown,
 * --dump (one line per prompt and tau) and --svg (through ipr_plot_svg_write).
 */
#include "cli/cli.h"
#include "cli/eval_cmd.h"
#include "ipr/err.h"
#include "ipr/io.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int eval_write_atomic(const char *path, const char *data, size_t len)
{
    return ipr_file_write(path, data, len);
}

static cJSON *num_or_null(double x)
{
    return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull();
}

char *eval_build_json(const struct eval_run *v, const char *dataset)
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
                snprintf(key, sizeof key, "%zu", eval_knn_cands[c]);
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
        const struct eval_entry *e = &v->e[r];
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

void eval_print_table(const struct eval_run *v, const char *dataset)
{
    printf("ipr eval: %s — %zu prompts, %zu candidates, rule %s, expected cost %s\n", dataset, v->n,
           v->m, ipr_rule_name(v->rule), v->expected_cost);
    printf("strongest %s (quality %.3f, $%.6f/prompt); cheapest %s (quality %.3f, $%.6f/prompt)\n",
           v->names[v->ref.strongest], v->ref.q_s, v->ref.c_s, v->names[v->ref.cheapest], v->ref.q_w, v->ref.c_w);
    printf("\n%-16s %6s %8s %12s %8s %8s %8s %8s %6s %8s\n", "router", "ARQGC", "max Q", "cost@maxQ",
           "parity", "PGR95", "PGR80", "PGR50", "top-1", "spearman");
    for (int r = 0; r < v->n_e; r++) {
        const struct eval_entry *e = &v->e[r];
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
char *eval_build_markdown(const struct eval_run *v, const char *dataset)
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
        const struct eval_entry *e = &v->e[r];
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
int eval_write_dump(const struct eval_run *v, const char *path, const char *who, const double *taus)
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
    int oom = 0;
    for (size_t j = 0; j < v->m; j++) {
        cJSON *s = cJSON_CreateString(v->names[j]);
        jn[j] = s ? cJSON_PrintUnformatted(s) : NULL;
        cJSON_Delete(s);
        oom |= jn[j] == NULL;
    }
    struct cli_progress pg;
    size_t n_rules = all_rules ? IPR_RULE_COUNT : 1;
    cli_progress_start(&pg, "dump", n_rules * IPR_EVAL_N_TAUS);
    int rc = oom ? ipr_error_set(IPR_ERR_NOMEM, "out of memory") : IPR_OK;
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
static size_t single_envelope(const struct eval_run *v, double *ec, double *eq, size_t cap)
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

int eval_write_svg(const struct eval_run *v, const char *path, const char *dataset, int log_x)
{
    double env_c[IPR_MAX_MODELS * ENV_SAMPLES + 1], env_q[IPR_MAX_MODELS * ENV_SAMPLES + 1];
    struct ipr_plot_series s[EVAL_MAX_ROUTERS + 3];
    char names[EVAL_MAX_ROUTERS + 3][64];
    static const char *const default_label[1] = { "default tau" };
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
            const struct eval_entry *e = &v->e[r];
            if (strcmp(e->name, order[o]) != 0)
                continue;
            struct ipr_plot_series x = { .name = names[ns], .n = e->cv.k, .cost = e->cv.cost,
                                         .quality = e->cv.quality, .style = IPR_PLOT_LINE_POINTS };
            if (strcmp(e->name, "ipr") == 0) {
                snprintf(names[ns], sizeof names[ns], "ipr (%s rule)", ipr_rule_name(e->rule));
                x.color = ipr_colors[ipr_i++ % 3];
                if (v->has_default) { /* the router's own operating point, marked on top */
                    s[ns++] = x;
                    snprintf(names[ns], sizeof names[ns], "ipr at its default tau (%.3g)", v->default_tau);
                    x = (struct ipr_plot_series){ .name = names[ns], .color = "#7f0000", .style = IPR_PLOT_POINTS,
                                                  .n = 1, .cost = &v->default_c, .quality = &v->default_q,
                                                  .labels = default_label, .radius = 6.0 };
                }
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

