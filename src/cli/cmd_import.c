/*
 * cmd_import.c — `ipr import --format routerbench|routerdc|llmrouter IN... -o OUT.jsonl`
 *
 * Converts one or more public dataset files into one canonical JSON Lines file
 * (model responses dropped). All inputs are parsed first; the output is
 * written atomically only when every input was accepted, so a bad file never
 * leaves a half-written output. OUT ending in ".gz" is written gzip'd.
 */
#include "cli/cli.h"
#include "ipr/data.h"
#include "ipr/err.h"

#include <stdio.h>
#include <string.h>

#define MAX_INPUTS 256

static void usage(FILE *f)
{
    fprintf(f, "usage: ipr import --format routerbench|routerdc|llmrouter IN... -o OUT.jsonl\n"
               "  Converts the files IN (appended in order) to the canonical JSON Lines dataset.\n"
               "  routerbench: RouterBench CSV; routerdc, llmrouter: JSON arrays of\n"
               "  {\"question\", \"scores\"}. See docs/data.md for the mapping.\n");
}

int cmd_import(int argc, char **argv)
{
    struct cli_opt opts[] = {
        { .name = "format", .takes_value = 1 },
        { .name = "out", .takes_value = 1 },
        { .name = "help" },
    };
    const size_t n_opts = sizeof opts / sizeof opts[0];
    char *args[MAX_INPUTS + 16];
    if (argc > MAX_INPUTS + 16) { fprintf(stderr, "ipr import: too many arguments\n"); return 2; }
    for (int i = 0; i < argc; i++) args[i] = strcmp(argv[i], "-o") == 0 ? (char *)"--out" : argv[i];
    const char *in[MAX_INPUTS];
    int n_in = 0;
    if (cli_parse(argc, args, opts, n_opts, in, MAX_INPUTS, &n_in)) { usage(stderr); return 2; }
    if (cli_flag(opts, n_opts, "help")) { usage(stdout); return 0; }
    const char *fmt_s = cli_get(opts, n_opts, "format"), *out = cli_get(opts, n_opts, "out");
    if (!fmt_s || !out || n_in == 0) {
        fprintf(stderr, "ipr import: needs --format, at least one input file and -o OUT\n");
        usage(stderr);
        return 2;
    }
    enum ipr_import_format fmt;
    if (!strcmp(fmt_s, "routerbench")) fmt = IPR_IMPORT_ROUTERBENCH;
    else if (!strcmp(fmt_s, "routerdc")) fmt = IPR_IMPORT_ROUTERDC;
    else if (!strcmp(fmt_s, "llmrouter")) fmt = IPR_IMPORT_LLMROUTER;
    else {
        fprintf(stderr, "ipr import: unknown format '%s' (routerbench, routerdc or llmrouter)\n", fmt_s);
        return 2;
    }
    struct ipr_dataset *ds = ipr_dataset_new();
    if (!ds) return cli_fail(argv[0], ipr_error_set(IPR_ERR_NOMEM, "out of memory"));
    for (int i = 0; i < n_in; i++) {
        size_t before = ds->n;
        int rc = ipr_import_file(ds, fmt, in[i]);
        if (rc) {
            ipr_dataset_free(ds);
            fprintf(stderr, "ipr import: %s\nipr import: nothing written to %s\n", ipr_error_message(), out);
            return 1;
        }
        fprintf(stderr, "  %s: %zu prompts\n", in[i], ds->n - before);
    }
    int rc = ipr_dataset_write(ds, out);
    if (rc) { ipr_dataset_free(ds); return cli_fail(argv[0], rc); }
    size_t labelled = 0;
    for (size_t k = 0; k < ds->n * ds->n_models; k++) labelled += ds->scores[k] == ds->scores[k];
    printf("%s: %zu prompts, %zu models, %zu labels (%.1f%% of cells)\n", out, ds->n, ds->n_models, labelled,
           ds->n && ds->n_models ? 100.0 * (double)labelled / (double)(ds->n * ds->n_models) : 0.0);
    ipr_dataset_free(ds);
    return 0;
}
