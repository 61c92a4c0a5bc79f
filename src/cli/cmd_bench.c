/*
 * cmd_bench.c — `ipr bench`: in-process routing latency and throughput on one
 * core (normalise, embed, every adapter, the rule), reported as figures.
 *
 * Prompts come from a dataset (--data) or are synthetic prompts of --words
 * words drawn from a fixed English word list. Each prompt is routed once to
 * warm up, then --n decisions are timed one by one; the report gives p50, p90,
 * p99 and decisions per second, and the same for embedding alone as the
 * baseline measured in the same run.
 */
#include "cli/cli.h"
#include "ipr/err.h"
#include "ipr/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: ipr bench --router ROUTER.ipr [--encoder FILE] [--data D.jsonl | --words N] [--n N] [--tau T]\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[k < n ? k : n - 1];
}

static const char *const words[] = {
    "the", "model", "answer", "question", "write", "function", "python", "list", "number", "which",
    "following", "best", "describes", "energy", "water", "people", "because", "explain", "how", "would",
    "sentence", "option", "correct", "string", "return", "value", "array", "sum", "prime", "student",
    "teacher", "science", "experiment", "result", "change", "temperature", "plant", "animal", "earth", "sun",
};

/* A deterministic synthetic prompt of nw words (caller frees). */
static char *synthetic(size_t nw, unsigned seed)
{
    char *s = malloc(nw * 12 + 2);
    size_t len = 0;
    if (!s)
        return NULL;
    for (size_t i = 0; i < nw; i++) {
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % (sizeof words / sizeof words[0])];
        len += (size_t)sprintf(s + len, "%s%s", i ? " " : "", w);
    }
    s[len++] = '?';
    s[len] = '\0';
    return s;
}

int cmd_bench(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "router", 1, NULL, 0, { 0 }, 0 }, { "encoder", 1, NULL, 0, { 0 }, 0 }, { "data", 1, NULL, 0, { 0 }, 0 },
        { "words", 1, NULL, 0, { 0 }, 0 }, { "n", 1, NULL, 0, { 0 }, 0 }, { "tau", 1, NULL, 0, { 0 }, 0 },
    };
    const size_t no = sizeof o / sizeof o[0];
    const char *pos[1], *s;
    int npos, rc, ret = 1;
    int started = cli_start(argc, argv, o, no, pos, 1, &npos, usage);
    if (started >= 0)
        return started;
    const char *rpath = cli_get(o, no, "router");
    if (npos || !rpath) {
        fputs(usage, stderr);
        return 2;
    }
    long n = 20000, nw = 50;
    double tau = 0.2;
    if (((s = cli_get(o, no, "n")) && (cli_long(s, &n) || n < 10 || n > 100000000)) ||
        ((s = cli_get(o, no, "words")) && (cli_long(s, &nw) || nw < 1 || nw > 1000000)) ||
        ((s = cli_get(o, no, "tau")) && (cli_double(s, &tau) || tau < 0 || tau > 1)))
        return cli_fail("bench", ipr_error_set(IPR_ERR_INVAL, "bad --n, --words or --tau"));

    struct ipr_router *r = NULL;
    struct ipr_router_ctx *ctx = NULL;
    struct ipr_embed_ctx *ec = NULL;
    const struct ipr_encoder *enc = NULL;
    struct ipr_dataset *ds = NULL;
    char **prompts = NULL;
    size_t np = 0;
    double *lat = malloc((size_t)n * sizeof *lat), *lat_e = malloc((size_t)n * sizeof *lat_e);
    float *emb = NULL;
    if (!lat || !lat_e) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((rc = ipr_router_open(rpath, cli_get(o, no, "encoder"), &r)) != IPR_OK ||
        (rc = ipr_router_ctx_new(r, &ctx)) != IPR_OK)
        goto fail;
    enc = ipr_router_encoder(r);
    if ((rc = ipr_embed_ctx_new(enc, &ec)) != IPR_OK)
        goto fail;
    if (!(emb = malloc(enc->dim * sizeof *emb))) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((s = cli_get(o, no, "data"))) {
        if ((rc = ipr_dataset_read(s, &ds)) != IPR_OK)
            goto fail;
        np = ds->n;
    } else {
        np = 64;
    }
    if (np == 0 || !(prompts = calloc(np, sizeof *prompts))) {
        rc = ipr_error_set(IPR_ERR_INVAL, "no prompts to bench");
        goto fail;
    }
    for (size_t i = 0; i < np; i++)
        if (!(prompts[i] = ds ? strdup(ds->prompts[i].text) : synthetic((size_t)nw, (unsigned)i + 1))) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
            goto fail;
        }
    struct ipr_route_request q = { .tau = tau, .rule = -1 };
    struct ipr_route_result res;
    for (size_t i = 0; i < np; i++) { /* warm-up: grows every scratch buffer once */
        q.text = prompts[i];
        q.len = strlen(prompts[i]);
        if ((rc = ipr_router_route(r, ctx, &q, &res)) != IPR_OK)
            goto fail;
    }
    double total_words = 0;
    for (size_t i = 0; i < np; i++)
        for (const char *p = prompts[i]; *p; p++)
            total_words += *p == ' ';
    double t_all = cli_now();
    for (long k = 0; k < n; k++) {
        q.text = prompts[(size_t)k % np];
        q.len = strlen(q.text);
        double t0 = cli_now();
        ipr_router_route(r, ctx, &q, &res);
        lat[k] = (cli_now() - t0) * 1e6;
    }
    t_all = cli_now() - t_all;
    double t_emb = cli_now();
    for (long k = 0; k < n; k++) {
        const char *t = prompts[(size_t)k % np];
        double t0 = cli_now();
        ipr_encoder_embed(enc, ec, t, strlen(t), emb);
        lat_e[k] = (cli_now() - t0) * 1e6;
    }
    t_emb = cli_now() - t_emb;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    qsort(lat_e, (size_t)n, sizeof *lat_e, cmp_double);
    printf("{\"prompts\": %zu, \"mean_words\": %.1f, \"decisions\": %ld, \"models\": %zu,\n"
           " \"route_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"per_second\": %.0f},\n"
           " \"embed_only_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"per_second\": %.0f}}\n",
           np, total_words / (double)np + 1, n, ipr_router_registry(r)->n,
           pct(lat, (size_t)n, 0.5), pct(lat, (size_t)n, 0.9), pct(lat, (size_t)n, 0.99), (double)n / t_all,
           pct(lat_e, (size_t)n, 0.5), pct(lat_e, (size_t)n, 0.9), pct(lat_e, (size_t)n, 0.99), (double)n / t_emb);
    ret = 0;
    goto out;
fail:
    ret = cli_fail("bench", rc);
out:
    if (prompts)
        for (size_t i = 0; i < np; i++)
            free(prompts[i]);
    free(prompts);
    free(lat), free(lat_e), free(emb);
    if (ec)
        ipr_embed_ctx_free(enc, ec);
    ipr_router_ctx_free(ctx);
    ipr_router_close(r);
    ipr_dataset_free(ds);
    return ret;
}
