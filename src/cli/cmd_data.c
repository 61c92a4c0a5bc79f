/*
 * cmd_data.c — `ipr data stats|split|fit-registry`: look at and cut datasets.
 *
 *   ipr data stats FILE [--registry R.json]
 *       prompts, models, tasks, label coverage, mean quality and mean cost per
 *       model; mean quality is shown both over labelled prompts only and with
 *       a missing label counted as 0 (the evaluation convention, DESIGN.md §4).
 *   ipr data split FILE --val F --test F -o PREFIX
 *       deterministic hash-of-id split (ipr_split_of) into PREFIX.train.jsonl,
 *       PREFIX.val.jsonl, PREFIX.test.jsonl (empty parts are not written).
 *   ipr data fit-registry FILE --registry R.json -o OUT.json
 *       keeps each model's prices and sets mean_out_tokens so that the
 *       registry's expected cost, averaged over FILE's prompts, equals the
 *       mean cost recorded in FILE (see docs/data.md).
 */
#include "cli/cli.h"
#include "ipr/data.h"
#include "ipr/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: ipr data stats FILE [--registry R.json]\n"
               "       ipr data split FILE --val F --test F -o PREFIX\n"
               "       ipr data fit-registry FILE --registry R.json -o OUT.json\n");
}

/* argv with "-o" spelled "--out", so cli_parse sees a long option. */
static char **long_o(int argc, char **argv)
{
    char **a = malloc((size_t)(argc + 1) * sizeof *a);
    if (!a) return NULL;
    for (int i = 0; i < argc; i++) a[i] = strcmp(argv[i], "-o") == 0 ? (char *)"--out" : argv[i];
    a[argc] = NULL;
    return a;
}

struct tally { const char *task; size_t n; };

static int stats(const char *path, const char *reg_path)
{
    struct ipr_dataset *ds;
    int rc = ipr_dataset_read(path, &ds);
    if (rc) return cli_fail("data stats", rc);
    struct ipr_registry *reg = NULL;
    if (reg_path && (rc = ipr_registry_read(reg_path, &reg))) { ipr_dataset_free(ds); return cli_fail("data stats", rc); }
    struct tally *tasks = calloc(ds->n + 1, sizeof *tasks);
    size_t n_tasks = 0, tok_sum = 0, chars = 0;
    if (!tasks) { ipr_dataset_free(ds); ipr_registry_free(reg); return cli_fail("data stats", ipr_error_set(IPR_ERR_NOMEM, "out of memory")); }
    for (size_t i = 0; i < ds->n; i++) {
        const char *t = ds->prompts[i].task ? ds->prompts[i].task : "(none)";
        size_t k;
        for (k = 0; k < n_tasks; k++) if (!strcmp(tasks[k].task, t)) break;
        if (k == n_tasks) tasks[n_tasks++].task = t;
        tasks[k].n++;
        size_t l = strlen(ds->prompts[i].text);
        chars += l;
        tok_sum += ipr_count_tokens(ds->prompts[i].text, l);
    }
    printf("%s\n  prompts  %zu\n  models   %zu\n  tasks    %zu:", path, ds->n, ds->n_models, n_tasks);
    for (size_t k = 0; k < n_tasks; k++) printf(" %s %zu%s", tasks[k].task, tasks[k].n, k + 1 < n_tasks ? "," : "");
    printf("\n  prompt length: mean %.0f characters, %.0f tokens (approximate, docs/data.md)\n",
           ds->n ? (double)chars / (double)ds->n : 0.0, ds->n ? (double)tok_sum / (double)ds->n : 0.0);
    printf("  checksum %016llx\n\n", (unsigned long long)ipr_dataset_checksum(ds));
    size_t w = 5;
    for (size_t m = 0; m < ds->n_models; m++) if (strlen(ds->models[m]) > w) w = strlen(ds->models[m]);
    printf("  %-*s  %8s %8s  %9s %9s  %12s%s\n", (int)w, "model", "labelled", "coverage", "quality", "quality", "mean cost",
           reg ? "  expected cost" : "");
    printf("  %-*s  %8s %8s  %9s %9s  %12s%s\n", (int)w, "", "", "", "labelled", "missing=0", "USD/prompt",
           reg ? "  (registry)" : "");
    for (size_t m = 0; m < ds->n_models; m++) {
        size_t nl = 0, nc = 0;
        double qs = 0, cs = 0;
        for (size_t i = 0; i < ds->n; i++) {
            double q = *ipr_dataset_score(ds, i, m), c = *ipr_dataset_cost(ds, i, m);
            if (!isnan(q)) { nl++; qs += q; }
            if (!isnan(c)) { nc++; cs += c; }
        }
        printf("  %-*s  %8zu %7.1f%%  ", (int)w, ds->models[m], nl, ds->n ? 100.0 * (double)nl / (double)ds->n : 0.0);
        if (nl) printf("%9.3f %9.3f  ", qs / (double)nl, qs / (double)ds->n);
        else printf("%9s %9s  ", "-", "-");
        if (nc) printf("%12.5f", cs / (double)nc);
        else printf("%12s", "-");
        if (reg) {
            int r = ipr_registry_find(reg, ds->models[m]);
            if (r >= 0) {
                double e = 0;
                for (size_t i = 0; i < ds->n; i++)
                    e += ipr_registry_expected_cost(reg, (size_t)r, ipr_count_tokens(ds->prompts[i].text, strlen(ds->prompts[i].text)));
                printf("  %13.5f", ds->n ? e / (double)ds->n : 0.0);
            } else printf("  %13s", "(absent)");
        }
        printf("\n");
    }
    printf("\n  quality \"labelled\": mean over the prompts labelled for that model (missing labels excluded);\n"
           "  \"missing=0\": mean over all prompts with a missing label counted as 0 (as ipr eval does).\n"
           "  mean cost: over the prompts with a recorded cost for that model.\n");
    free(tasks);
    ipr_dataset_free(ds);
    ipr_registry_free(reg);
    return 0;
}

static int split(const char *path, const char *val_s, const char *test_s, const char *prefix)
{
    double val = 0, test = 0;
    if ((val_s && cli_double(val_s, &val)) || (test_s && cli_double(test_s, &test)) ||
        val < 0 || test < 0 || val + test > 1) {
        fprintf(stderr, "ipr data split: --val and --test must be fractions >= 0 summing to at most 1\n");
        return 2;
    }
    struct ipr_dataset *ds;
    int rc = ipr_dataset_read(path, &ds);
    if (rc) return cli_fail("data split", rc);
    uint8_t *keep = malloc(ds->n ? ds->n : 1);
    if (!keep) { ipr_dataset_free(ds); return cli_fail("data split", ipr_error_set(IPR_ERR_NOMEM, "out of memory")); }
    static const char *const names[3] = { "train", "val", "test" };
    /* all parts are built first, then written, so a failure writes nothing */
    struct ipr_dataset *part[3] = { 0 };
    for (int s = 0; s < 3 && rc == 0; s++) {
        for (size_t i = 0; i < ds->n; i++) keep[i] = ipr_split_of(ds->prompts[i].id, val, test) == s;
        rc = ipr_dataset_subset(ds, keep, &part[s]);
    }
    char out[4096];
    for (int s = 0; s < 3 && rc == 0; s++) {
        snprintf(out, sizeof out, "%s.%s.jsonl", prefix, names[s]);
        if (part[s]->n == 0) { printf("%s: empty, not written\n", out); continue; }
        rc = ipr_dataset_write(part[s], out);
        if (rc == 0) printf("%s: %zu prompts\n", out, part[s]->n);
    }
    for (int s = 0; s < 3; s++) ipr_dataset_free(part[s]);
    free(keep);
    ipr_dataset_free(ds);
    return rc ? cli_fail("data split", rc) : 0;
}

static int fit_registry(const char *path, const char *reg_path, const char *out)
{
    struct ipr_dataset *ds;
    struct ipr_registry *reg;
    int rc = ipr_dataset_read(path, &ds);
    if (rc) return cli_fail("data fit-registry", rc);
    if ((rc = ipr_registry_read(reg_path, &reg))) { ipr_dataset_free(ds); return cli_fail("data fit-registry", rc); }
    printf("%-40s %12s %12s %10s %10s %14s\n", "model", "mean tokens", "mean cost", "price_in", "price_out", "mean_out_tokens");
    for (size_t r = 0; r < reg->n; r++) {
        struct ipr_model_info *mi = &reg->models[r];
        int m = ipr_dataset_model_index(ds, mi->name);
        size_t nc = 0;
        double cs = 0, ts = 0;
        for (size_t i = 0; m >= 0 && i < ds->n; i++) {
            double c = *ipr_dataset_cost(ds, i, (size_t)m);
            if (isnan(c)) continue;
            nc++; cs += c;
            ts += (double)ipr_count_tokens(ds->prompts[i].text, strlen(ds->prompts[i].text));
        }
        if (!nc) { printf("%-40s (no costs in the data: left as is)\n", mi->name); continue; }
        double mc = cs / (double)nc, mt = ts / (double)nc;
        double left = mc * 1e6 - mi->price_in * mt;
        if (mi->price_out > 0 && left >= 0) mi->mean_out_tokens = round(left / mi->price_out * 10) / 10;
        else {
            mi->mean_out_tokens = 0;
            fprintf(stderr, "ipr data fit-registry: %s: the input price alone exceeds the mean cost; mean_out_tokens set to 0\n", mi->name);
        }
        printf("%-40s %12.1f %12.6f %10.3f %10.3f %14.1f\n", mi->name, mt, mc, mi->price_in, mi->price_out, mi->mean_out_tokens);
    }
    rc = ipr_registry_write(reg, out);
    ipr_registry_free(reg);
    ipr_dataset_free(ds);
    return rc ? cli_fail("data fit-registry", rc) : 0;
}

int cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct cli_opt opts[] = {
        { .name = "val", .takes_value = 1 },
        { .name = "test", .takes_value = 1 },
        { .name = "out", .takes_value = 1 },
        { .name = "registry", .takes_value = 1 },
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    char **args = long_o(argc - 1, argv + 1);
    if (!args) return cli_fail("data", ipr_error_set(IPR_ERR_NOMEM, "out of memory"));
    const char *pos[4];
    int n_pos = 0, rc;
    if (cli_parse(argc - 1, args, opts, n_opts, pos, 4, &n_pos)) { free(args); usage(stderr); return 2; }
    const char *sub = argv[1], *out = cli_get(opts, n_opts, "out"), *reg = cli_get(opts, n_opts, "registry");
    if (n_pos != 1) {
        fprintf(stderr, "ipr data %s: needs exactly one FILE\n", sub);
        usage(stderr);
        rc = 2;
    } else if (!strcmp(sub, "stats")) {
        rc = stats(pos[0], reg);
    } else if (!strcmp(sub, "split")) {
        if (!out) { fprintf(stderr, "ipr data split: needs -o PREFIX\n"); rc = 2; }
        else rc = split(pos[0], cli_get(opts, n_opts, "val"), cli_get(opts, n_opts, "test"), out);
    } else if (!strcmp(sub, "fit-registry")) {
        if (!out || !reg) { fprintf(stderr, "ipr data fit-registry: needs --registry R.json and -o OUT.json\n"); rc = 2; }
        else rc = fit_registry(pos[0], reg, out);
    } else {
        fprintf(stderr, "ipr data: unknown subcommand '%s'\n", sub);
        usage(stderr);
        rc = 2;
    }
    free(args);
    return rc;
}
