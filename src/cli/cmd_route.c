/*
 * cmd_route.c — `ipr route`: one routing decision as JSON on stdout.
 */
#include "cli/cli.h"
#include "ipr/err.h"
#include "ipr/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: ipr route --router ROUTER.ipr [--encoder FILE] [--tau T] [--rule range|dynmax|difference]\n"
    "                 [--delta D] [--models a,b,...] [--family F] [--explain] PROMPT | --file PATH | -\n"
    "Prints the decision as JSON; '-' reads the prompt from standard input.\n";

/* Reads all of f into a malloc'd buffer (NUL-terminated). */
static char *slurp(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(b, cap *= 2);
        if (!nb) {
            free(b);
            return NULL;
        }
        b = nb;
    }
    if (b)
        b[n] = '\0';
    *len = n;
    return b;
}

int cmd_route(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "router", 1, NULL, 0, { 0 }, 0 }, { "encoder", 1, NULL, 0, { 0 }, 0 }, { "tau", 1, NULL, 0, { 0 }, 0 },
        { "rule", 1, NULL, 0, { 0 }, 0 }, { "delta", 1, NULL, 0, { 0 }, 0 }, { "models", 1, NULL, 0, { 0 }, 0 },
        { "family", 1, NULL, 0, { 0 }, 0 }, { "explain", 0, NULL, 0, { 0 }, 0 }, { "file", 1, NULL, 0, { 0 }, 0 },
    };
    const size_t no = sizeof o / sizeof o[0];
    const char *pos[2];
    int npos, rc, ret = 1;
    int started = cli_start(argc, argv, o, no, pos, 2, &npos, usage);
    if (started >= 0)
        return started;
    const char *rpath = cli_get(o, no, "router"), *file = cli_get(o, no, "file"), *s;
    if (!rpath || (npos != 1 && !file) || (npos && file)) {
        fputs(usage, stderr);
        return 2;
    }
    struct ipr_route_request q = { .rule = -1 };
    const char *names[IPR_MAX_MODELS];
    char *models = NULL, *text = NULL;
    struct ipr_router *r = NULL;
    struct ipr_router_ctx *ctx = NULL;
    if ((s = cli_get(o, no, "rule"))) {
        enum ipr_rule rule;
        if ((rc = ipr_rule_parse(s, &rule)) != IPR_OK)
            return cli_fail("route", rc);
        q.rule = (int)rule;
    }
    if ((s = cli_get(o, no, "delta")) && cli_double(s, &q.delta))
        return cli_fail("route", ipr_error_set(IPR_ERR_INVAL, "--delta: not a number: '%s'", s));
    if ((s = cli_get(o, no, "tau")) && cli_double(s, &q.tau))
        return cli_fail("route", ipr_error_set(IPR_ERR_INVAL, "--tau: not a number: '%s'", s));
    if ((s = cli_get(o, no, "models"))) {
        if (!(models = strdup(s)))
            return cli_fail("route", ipr_error_set(IPR_ERR_NOMEM, "out of memory"));
        q.models = names;
        for (char *t = strtok(models, ","); t; t = strtok(NULL, ",")) {
            if (q.n_models == IPR_MAX_MODELS) {
                rc = ipr_error_set(IPR_ERR_LIMIT, "--models: too many names");
                goto fail;
            }
            names[q.n_models++] = t;
        }
    }
    q.family = cli_get(o, no, "family");
    if (file || strcmp(pos[0], "-") == 0) {
        FILE *f = file ? fopen(file, "rb") : stdin;
        if (!f) {
            rc = ipr_error_set(IPR_ERR_IO, "%s: cannot open", file);
            goto fail;
        }
        text = slurp(f, &q.len);
        if (file)
            fclose(f);
        if (!text) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory reading the prompt");
            goto fail;
        }
        q.text = text;
    } else {
        q.text = pos[0];
        q.len = strlen(pos[0]);
    }
    if ((rc = ipr_router_open(rpath, cli_get(o, no, "encoder"), &r)) != IPR_OK ||
        (rc = ipr_router_ctx_new(r, &ctx)) != IPR_OK)
        goto fail;
    if (!cli_get(o, no, "tau"))
        q.tau = ipr_router_default_tau(r);
    struct ipr_route_result res;
    if ((rc = ipr_router_route(r, ctx, &q, &res)) != IPR_OK)
        goto fail;
    char *json = ipr_route_result_json(r, &q, &res, cli_flag(o, no, "explain"));
    if (!json) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    puts(json);
    free(json);
    ret = 0;
    goto out;
fail:
    ret = cli_fail("route", rc);
out:
    ipr_router_ctx_free(ctx);
    ipr_router_close(r);
    free(models);
    free(text);
    return ret;
}
