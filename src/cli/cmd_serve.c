/*
 * cmd_serve.c — `ipr serve`: the routing server and OpenAI-compatible gateway
 * (docs/serving.md). Composes the config, starts the server, then waits for
 * signals on the main thread: SIGHUP reloads the router bundles, SIGTERM and
 * SIGINT drain in-flight requests, flush the decision log and exit 0.
 */
#include "cli/cli.h"
#include "ipr/err.h"
#include "ipr/serve.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: ipr serve --router R.ipr [--config C.json] [--port 8080] [--host 127.0.0.1]\n"
            "                 [--encoder E.ipre] [--log decisions.db] [--threads N] [--insecure]\n"
            "  --router [NAME=]PATH  serve this bundle (NAME defaults to \"ipr\"); may repeat\n"
            "  --config C.json       routers, upstreams, client keys, limits, log (docs/serve-config.example.json)\n"
            "  --port / --host       listen address (default 127.0.0.1:8080; port 0 picks a free one)\n"
            "  --log DB              SQLite decision log (overrides the config's log.path)\n"
            "  --insecure            allow a non-loopback address without client keys\n"
            "signals: SIGHUP reloads the bundles, SIGTERM/SIGINT drain and exit.\n");
}

int cmd_serve(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "router", 1, NULL, 1, { 0 }, 0 }, { "config", 1, NULL, 0, { 0 }, 0 },
        { "port", 1, NULL, 0, { 0 }, 0 },   { "host", 1, NULL, 0, { 0 }, 0 },
        { "encoder", 1, NULL, 0, { 0 }, 0 }, { "log", 1, NULL, 0, { 0 }, 0 },
        { "threads", 1, NULL, 0, { 0 }, 0 }, { "insecure", 0, NULL, 0, { 0 }, 0 },
        { "help", 0, NULL, 0, { 0 }, 0 },
    };
    size_t no = sizeof o / sizeof o[0];
    const char *pos[4];
    int npos, rc;
    if ((rc = cli_parse(argc, argv, o, no, pos, 4, &npos)) != 0)
        return rc;
    if (cli_flag(o, no, "help")) {
        usage();
        return 0;
    }
    if (npos) {
        fprintf(stderr, "ipr serve: unexpected argument '%s'\n", pos[0]);
        usage();
        return 2;
    }
    struct ipr_serve_config cfg;
    ipr_serve_config_defaults(&cfg);
    int exit_code = 1;
    struct ipr_server *srv = NULL;
    const char *v;
    if ((v = cli_get(o, no, "config")) && (rc = ipr_serve_config_read(v, &cfg)) != IPR_OK)
        goto fail;
    for (int i = 0; i < o[0].n_values; i++) {
        const char *spec = o[0].values[i], *eq = strchr(spec, '=');
        char name[IPR_SERVE_NAME_MAX] = "ipr";
        if (eq) {
            size_t l = (size_t)(eq - spec);
            if (l == 0 || l >= sizeof name) {
                fprintf(stderr, "ipr serve: bad --router '%s' (NAME=PATH)\n", spec);
                goto out;
            }
            memcpy(name, spec, l);
            name[l] = '\0';
            spec = eq + 1;
        }
        if ((rc = ipr_serve_config_add_router(&cfg, name, spec, cli_get(o, no, "encoder"))) != IPR_OK)
            goto fail;
    }
    if (o[0].n_values == 0 && (v = cli_get(o, no, "encoder")))
        for (size_t i = 0; i < cfg.n_routers; i++)
            if (!cfg.routers[i].encoder && !(cfg.routers[i].encoder = strdup(v)))
                goto out;
    if ((v = cli_get(o, no, "port"))) {
        long p;
        if (cli_long(v, &p) != 0 || p < 0 || p > 65535) {
            fprintf(stderr, "ipr serve: --port must be 0..65535\n");
            goto out;
        }
        cfg.port = (int)p;
    }
    if ((v = cli_get(o, no, "host"))) {
        free(cfg.host);
        if (!(cfg.host = strdup(v)))
            goto out;
    }
    if ((v = cli_get(o, no, "log"))) {
        free(cfg.log_path);
        if (!(cfg.log_path = strdup(v)))
            goto out;
    }
    if ((v = cli_get(o, no, "threads"))) {
        long t;
        if (cli_long(v, &t) != 0 || t < 0 || t > 1024) {
            fprintf(stderr, "ipr serve: --threads must be 0..1024\n");
            goto out;
        }
        cfg.limits.threads = (unsigned)t;
    }
    if (cli_flag(o, no, "insecure"))
        cfg.insecure = 1;
    if (cfg.n_routers == 0) {
        fprintf(stderr, "ipr serve: no router: give --router R.ipr or \"routers\" in --config\n");
        usage();
        goto out;
    }

    /* Long-lived streams need a socket each way: raise the descriptor limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Signals go to this thread only: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if ((rc = ipr_server_start(&cfg, &srv)) != IPR_OK)
        goto fail;
    const char *host = cfg.host ? cfg.host : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "ipr serve: listening on http://%s%s%s:%d (routers:", v6 ? "[" : "", host, v6 ? "]" : "",
            ipr_server_port(srv));
    for (size_t i = 0; i < cfg.n_routers; i++)
        fprintf(stderr, " %s=%s", cfg.routers[i].name, cfg.routers[i].bundle);
    fprintf(stderr, "%s%s)\n", cfg.log_path ? "; log " : "", cfg.log_path ? cfg.log_path : "");
    fflush(stderr);

    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (ipr_server_reload(srv) == IPR_OK)
                fprintf(stderr, "ipr serve: reloaded router bundles\n");
            else
                fprintf(stderr, "ipr serve: reload failed, still serving the previous bundles: %s\n", ipr_error_message());
            continue;
        }
        fprintf(stderr, "ipr serve: %s: draining in-flight requests\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    ipr_server_stop(srv);
    srv = NULL;
    fprintf(stderr, "ipr serve: stopped\n");
    exit_code = 0;
    goto out;
fail:
    exit_code = cli_fail("serve", rc);
out:
    ipr_server_stop(srv);
    ipr_serve_config_free(&cfg);
    curl_global_cleanup();
    return exit_code;
}

/* ------------------------------------------------------------ eval --log */

/* `ipr eval --log DB [--rule R] [--delta D] [--json OUT]`: what a decision log
 * says (ipr_declog_replay_json): a table on stdout, the full document (101
 * taus) in --json. Called by cmd_eval when --log is given. */
int cli_eval_log(const char *db, const char *rule_name, const char *delta_s, const char *json_path)
{
    enum ipr_rule rule = IPR_RULE_RANGE;
    double delta = 0;
    if (rule_name && ipr_rule_parse(rule_name, &rule) != IPR_OK)
        return cli_fail("eval", IPR_ERR_INVAL);
    if (delta_s && (cli_double(delta_s, &delta) != 0 || delta < 0)) {
        fprintf(stderr, "ipr eval: --delta must be a number >= 0\n");
        return 2;
    }
    struct ipr_declog_table *t = NULL;
    int rc = ipr_declog_read(db, &t);
    if (rc != IPR_OK)
        return cli_fail("eval", rc);
    double taus[101];
    for (int k = 0; k <= 100; k++)
        taus[k] = k / 100.0;
    char *js = ipr_declog_replay_json(t, rule, delta, taus, 101);
    cJSON *o = js ? cJSON_Parse(js) : NULL;
    if (!o) {
        free(js);
        ipr_declog_table_free(t);
        return cli_fail("eval", IPR_ERR_NOMEM);
    }
    const cJSON *sv = cJSON_GetObjectItem(o, "served");
#define NUM(obj, key) (cJSON_IsNumber(cJSON_GetObjectItem(obj, key)) ? cJSON_GetObjectItem(obj, key)->valuedouble : NAN)
    printf("decision log %s: %zu decisions over %zu models, %.0f with feedback\n", db, t->n, t->n_models,
           NUM(sv, "n_feedback"));
    printf("served: mean expected cost $%.6g; mean observed quality %.4f; predicted quality of the choice %.4f "
           "(calibration MAE %.4f)\n", NUM(sv, "mean_expected_cost"), NUM(sv, "mean_observed_quality"),
           NUM(sv, "mean_predicted_quality_of_choice"), NUM(sv, "calibration_mae"));
    printf("\n%-36s %7s %9s %8s %9s %9s\n", "model", "share", "decisions", "feedback", "observed", "predicted");
    const cJSON *pm = cJSON_GetObjectItem(sv, "per_model"), *e;
    cJSON_ArrayForEach(e, pm)
        printf("%-36.36s %6.1f%% %9.0f %8.0f %9.4f %9.4f\n", e->string, 100 * NUM(e, "share"), NUM(e, "decisions"),
               NUM(e, "n_feedback"), NUM(e, "mean_observed_quality"), NUM(e, "mean_predicted_quality"));
    printf("\nreplayed on the logged predictions (%s rule): what each tau would have chosen\n", ipr_rule_name(rule));
    printf("%5s %14s %10s %10s %22s\n", "tau", "mean exp. cost", "pred. qual", "agreement", "observed where agreeing");
    const cJSON *curve = cJSON_GetObjectItem(o, "curve");
    for (int k = 0; k <= 100; k += 10) {
        const cJSON *pt = cJSON_GetArrayItem(curve, k);
        printf("%5.2f %14.6g %10.4f %9.1f%% %14.4f (n=%.0f)\n", NUM(pt, "tau"), NUM(pt, "mean_expected_cost"),
               NUM(pt, "mean_predicted_quality"), 100 * NUM(pt, "agreement"),
               NUM(pt, "observed_quality_where_agreeing"), NUM(pt, "n_agree_feedback"));
    }
#undef NUM
    printf("(qualities of the models not called are never observed: for the full curves of DESIGN.md section 4, "
           "evaluate on labelled data with --data)\n");
    int ret = 0;
    if (json_path) {
        FILE *f = fopen(json_path, "w");
        if (!f || fputs(js, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "ipr eval: cannot write %s\n", json_path);
            ret = 1;
        }
    }
    cJSON_Delete(o);
    free(js);
    ipr_declog_table_free(t);
    return ret;
}
