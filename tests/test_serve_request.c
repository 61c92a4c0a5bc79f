/*
 * test_serve_request.c — the server's pure parts: request parsing (good,
 * malformed, wrong types, out of range, invalid UTF-8), the config file, the
 * SQLite decision log (write, feedback, read back, reopen) and the Prometheus
 * text. The HTTP end to end is tests/test_serve.sh.
 */
#include "check.h"
#include "ipr/err.h"
#include "ipr/serve.h"
#include "serve/serve_int.h"

#include <cjson/cJSON.h>
#include <unistd.h>

static int parse(enum ipr_serve_kind k, const char *body, struct ipr_serve_request *req)
{
    return ipr_serve_parse_request(k, body, strlen(body), req);
}

static void test_utf8(void)
{
    CHECK(ipr_utf8_valid("", 0));
    CHECK(ipr_utf8_valid("plain ascii", 11));
    CHECK(ipr_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    CHECK(!ipr_utf8_valid("\xc3", 1));               /* truncated */
    CHECK(!ipr_utf8_valid("\xc0\xaf", 2));           /* overlong */
    CHECK(!ipr_utf8_valid("\xe0\x80\xaf", 3));       /* overlong */
    CHECK(!ipr_utf8_valid("\xed\xa0\x80", 3));       /* surrogate */
    CHECK(!ipr_utf8_valid("\xf4\x90\x80\x80", 4));   /* > U+10FFFF */
    CHECK(!ipr_utf8_valid("\xff", 1));
    CHECK(!ipr_utf8_valid("a\x80", 2));              /* lone continuation */
}

static void test_route_ok(void)
{
    struct ipr_serve_request r;
    CHECK_EQ_INT(parse(IPR_SERVE_ROUTE, "{\"prompt\": \"hello world\", \"tau\": 0.25, \"explain\": true,"
                                        " \"models\": [\"a\", \"b\"], \"family\": \"f\", \"router\": \"x\"}", &r), IPR_OK);
    CHECK_EQ_INT(r.text_len, 11);
    CHECK(strncmp(r.text, "hello world", 11) == 0);
    CHECK(r.has_tau);
    CHECK_NEAR(r.tau, 0.25, 0);
    CHECK(r.explain);
    CHECK_EQ_INT(r.n_models, 2);
    CHECK_STR(r.models[1], "b");
    CHECK_STR(r.family, "f");
    CHECK_STR(r.router, "x");
    CHECK_EQ_INT(r.rule, -1);
    ipr_serve_request_free(&r);

    /* messages: the last user turn is routed on, system and earlier turns not */
    CHECK_EQ_INT(parse(IPR_SERVE_ROUTE, "{\"messages\": [{\"role\": \"system\", \"content\": \"be brief\"},"
                                        "{\"role\": \"user\", \"content\": \"first\"},"
                                        "{\"role\": \"assistant\", \"content\": \"ok\"},"
                                        "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"two\"},"
                                        "{\"type\": \"image_url\", \"image_url\": {}}, {\"type\": \"text\", \"text\": \"parts\"}]}]}", &r), IPR_OK);
    CHECK_EQ_INT(r.text_len, 9);
    CHECK(strncmp(r.text, "two\nparts", 9) == 0);
    CHECK(!r.has_tau);
    ipr_serve_request_free(&r);
}

static void expect_bad(enum ipr_serve_kind k, const char *body, int status, const char *needle)
{
    struct ipr_serve_request r;
    int rc = parse(k, body, &r);
    CHECK_MSG(rc != IPR_OK, "accepted: %s", body);
    CHECK_MSG(r.status == status, "%s: status %d, want %d (%s)", body, r.status, status, r.err);
    CHECK_MSG(strstr(r.err, needle) != NULL, "%s: message '%s' lacks '%s'", body, r.err, needle);
    CHECK(r.err_type != NULL);
    ipr_serve_request_free(&r);
}

static void test_route_bad(void)
{
    expect_bad(IPR_SERVE_ROUTE, "", 400, "not valid JSON");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\"", 400, "not valid JSON");
    expect_bad(IPR_SERVE_ROUTE, "[1,2]", 400, "JSON object");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\"} junk", 400, "trailing");
    expect_bad(IPR_SERVE_ROUTE, "{}", 400, "missing prompt");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": 5}", 400, "prompt must be a string");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"messages\": []}", 400, "either");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"tau\": 1.5}", 400, "tau must be in [0, 1]");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"tau\": -0.1}", 400, "tau must be in [0, 1]");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"tau\": \"0.3\"}", 400, "tau must be a number");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"models\": \"a\"}", 400, "models must be an array");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"models\": [1]}", 400, "models must be an array");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"models\": []}", 400, "empty");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"explain\": 1}", 400, "explain");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"rule\": \"best\"}", 400, "unknown rule");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"x\", \"router\": 3}", 400, "router must be a string");
    expect_bad(IPR_SERVE_ROUTE, "{\"prompt\": \"\xff\"}", 400, "UTF-8");
    expect_bad(IPR_SERVE_ROUTE, "{\"messages\": [{\"role\": \"system\", \"content\": \"x\"}]}", 400, "no user turn");
    expect_bad(IPR_SERVE_ROUTE, "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}", 400, "content");
    expect_bad(IPR_SERVE_ROUTE, "{\"messages\": [\"hi\"]}", 400, "must be an object");
    expect_bad(IPR_SERVE_ROUTE, "{\"messages\": {}}", 400, "must be an array");
    /* a NUL byte inside the body */
    struct ipr_serve_request r;
    CHECK(ipr_serve_parse_request(IPR_SERVE_ROUTE, "{\"prompt\":\"a\0\"}", 15, &r) != IPR_OK);
    CHECK_EQ_INT(r.status, 400);
    ipr_serve_request_free(&r);
    /* deep nesting is refused, not a stack overflow */
    char deep[6000];
    size_t n = 0;
    for (int i = 0; i < 2000; i++) deep[n++] = '[';
    for (int i = 0; i < 2000; i++) deep[n++] = ']';
    deep[n] = '\0';
    CHECK(parse(IPR_SERVE_ROUTE, deep, &r) != IPR_OK);
    ipr_serve_request_free(&r);
}

static void test_chat(void)
{
    struct ipr_serve_request r;
    CHECK_EQ_INT(parse(IPR_SERVE_CHAT, "{\"model\": \"ipr:tau=0.3,rule=dynmax,delta=0.01\", \"stream\": true,"
                                       " \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}],"
                                       " \"ipr\": {\"models\": [\"m1\"]}, \"temperature\": 0}", &r), IPR_OK);
    CHECK_STR(r.router, "ipr");
    CHECK(r.has_tau);
    CHECK_NEAR(r.tau, 0.3, 1e-12);
    CHECK_EQ_INT(r.rule, IPR_RULE_DYNMAX);
    CHECK_NEAR(r.delta, 0.01, 1e-12);
    CHECK(r.stream);
    CHECK_EQ_INT(r.n_models, 1);
    ipr_serve_request_free(&r);
    CHECK_EQ_INT(parse(IPR_SERVE_CHAT, "{\"model\": \"other\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", &r), IPR_OK);
    CHECK_STR(r.router, "other");
    CHECK(!r.has_tau);
    CHECK(!r.stream);
    ipr_serve_request_free(&r);

    expect_bad(IPR_SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "model must be a string");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr:tau=2\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "tau must be in");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr:tau=abc\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "tau must be a number");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr:speed=1\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "unknown model option");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr:tau\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "key=value");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \":tau=1\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "router");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr\"}", 400, "messages must be an array");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr\", \"stream\": \"yes\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "stream");
    expect_bad(IPR_SERVE_CHAT, "{\"model\": \"ipr\", \"ipr\": [], \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "ipr must be an object");
}

static void test_feedback(void)
{
    char id[64], err[128];
    double q;
    CHECK_EQ_INT(ipr_serve_parse_feedback("{\"id\": \"ipr-1\", \"quality\": 0.5}", 32, id, sizeof id, &q, err, sizeof err), IPR_OK);
    CHECK_STR(id, "ipr-1");
    CHECK_NEAR(q, 0.5, 0);
    CHECK(ipr_serve_parse_feedback("{\"id\": \"ipr-1\", \"quality\": 1.5}", 32, id, sizeof id, &q, err, sizeof err) != IPR_OK);
    CHECK(ipr_serve_parse_feedback("{\"id\": 3, \"quality\": 1}", 23, id, sizeof id, &q, err, sizeof err) != IPR_OK);
    CHECK(ipr_serve_parse_feedback("nope", 4, id, sizeof id, &q, err, sizeof err) != IPR_OK);
}

static void test_config(void)
{
    struct ipr_serve_config c;
    ipr_serve_config_defaults(&c);
    const char *js =
        "{\"host\": \"127.0.0.1\", \"port\": 0,"
        " \"routers\": {\"ipr\": {\"bundle\": \"a.ipr\", \"tau\": 0.4, \"rule\": \"difference\"},"
        "               \"cheap\": {\"bundle\": \"b.ipr\", \"strongest\": \"big\"}},"
        " \"default_router\": \"cheap\","
        " \"upstreams\": {\"big\": {\"base_url\": \"http://127.0.0.1:9/v1\", \"api_key_env\": \"K\", \"model\": \"gpt\"}},"
        " \"keys\": [\"sk-test-123456\"],"
        " \"limits\": {\"max_body\": 4096, \"client_timeout_s\": 2, \"upstream_first_byte_s\": 0.5},"
        " \"log\": {\"path\": \"d.db\", \"batch\": 10, \"flush_s\": 0.01}}";
    CHECK_EQ_INT(ipr_serve_config_parse(js, strlen(js), "c.json", &c), IPR_OK);
    CHECK_EQ_INT(c.n_routers, 2);
    CHECK_STR(c.routers[0].name, "ipr");
    CHECK_NEAR(c.routers[0].tau, 0.4, 0);
    CHECK_EQ_INT(c.routers[0].rule, IPR_RULE_DIFFERENCE);
    CHECK_STR(c.routers[1].strongest, "big");
    CHECK_STR(c.default_router, "cheap");
    CHECK_EQ_INT(c.n_upstreams, 1);
    CHECK_STR(c.upstreams[0].upstream_model, "gpt");
    CHECK_EQ_INT(c.n_keys, 1);
    CHECK_EQ_INT(c.limits.max_body, 4096);
    CHECK_NEAR(c.limits.upstream_first_byte_s, 0.5, 0);
    CHECK_STR(c.log_path, "d.db");
    CHECK_EQ_INT(c.log_batch, 10);
    CHECK_EQ_INT(ipr_serve_config_check(&c), IPR_OK);
    ipr_serve_config_free(&c);

    static const char *bad[] = {
        "{\"prot\": 1}", "{\"port\": 70000}", "{\"limits\": {\"max_bodyy\": 1}}", "{\"limits\": {\"max_body\": -1}}",
        "{\"routers\": {\"a:b\": {\"bundle\": \"x\"}}}", "{\"routers\": {\"a\": {\"rule\": \"best\"}}}",
        "{\"upstreams\": {\"m\": {}}}", "{\"keys\": [\"short\"]}", "[]", "{",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ipr_serve_config_defaults(&c);
        CHECK_MSG(ipr_serve_config_parse(bad[i], strlen(bad[i]), "c.json", &c) != IPR_OK, "accepted %s", bad[i]);
        CHECK(strstr(ipr_error_message(), "c.json") != NULL);
        ipr_serve_config_free(&c);
    }
    /* no keys on a public address: refused unless insecure */
    ipr_serve_config_defaults(&c);
    CHECK(ipr_serve_config_check(&c) != IPR_OK); /* no router */
    CHECK_EQ_INT(ipr_serve_config_add_router(&c, "ipr", "x.ipr", NULL), IPR_OK);
    CHECK_EQ_INT(ipr_serve_config_check(&c), IPR_OK);
    c.host = strdup("0.0.0.0");
    CHECK(ipr_serve_config_check(&c) != IPR_OK);
    CHECK(strstr(ipr_error_message(), "keys") != NULL);
    c.insecure = 1;
    CHECK_EQ_INT(ipr_serve_config_check(&c), IPR_OK);
    ipr_serve_config_free(&c);
    /* the documented example stays valid */
    const char *tdir = getenv("IPR_TESTS");
    char ex[4096];
    snprintf(ex, sizeof ex, "%s/../docs/serve-config.example.json", tdir ? tdir : "tests");
    ipr_serve_config_defaults(&c);
    CHECK_MSG(ipr_serve_config_read(ex, &c) == IPR_OK, "%s", ipr_error_message());
    CHECK_EQ_INT(c.n_routers, 2);
    CHECK_EQ_INT(ipr_serve_config_check(&c), IPR_OK);
    ipr_serve_config_free(&c);
    CHECK(ipr_serve_host_is_loopback("127.0.0.1"));
    CHECK(ipr_serve_host_is_loopback("::1"));
    CHECK(ipr_serve_host_is_loopback("localhost"));
    CHECK(!ipr_serve_host_is_loopback("10.0.0.1"));
}

static void test_declog(void)
{
    char dir[] = "/tmp/ipr-test-log-XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/d.db", dir);
    struct ipr_declog *log = NULL;
    CHECK_EQ_INT(ipr_declog_open(path, 4, 0.01, &log), IPR_OK);
    for (int i = 0; i < 10; i++) {
        struct ipr_declog_record r;
        memset(&r, 0, sizeof r);
        snprintf(r.id, sizeof r.id, "id-%d", i);
        snprintf(r.endpoint, sizeof r.endpoint, "route");
        snprintf(r.router, sizeof r.router, "ipr");
        snprintf(r.model, sizeof r.model, i % 2 ? "big" : "small");
        snprintf(r.rule, sizeof r.rule, "range");
        r.tau = 0.5;
        r.threshold = 0.4;
        r.expected_cost = i % 2 ? 0.01 : 0.001;
        r.predictions = strdup(i == 3 ? "{\"big\":0.9,\"small\":0.5,\"mid\":0.7}" : "{\"big\":0.9,\"small\":0.5}");
        r.costs = strdup("{\"big\":0.01,\"small\":0.001}");
        CHECK_EQ_INT(ipr_declog_append(log, &r), IPR_OK);
        CHECK(r.predictions == NULL);
    }
    CHECK_EQ_INT(ipr_declog_feedback(log, "id-3", 0.75), IPR_OK);
    CHECK_EQ_INT(ipr_declog_feedback(log, "nope", 0.75), IPR_ERR_NOTFOUND);
    CHECK_EQ_INT(ipr_declog_flush(log), IPR_OK);
    uint64_t w, d, b;
    ipr_declog_stats(log, &w, &d, &b);
    CHECK_EQ_INT(w, 10);
    CHECK_EQ_INT(d, 0);
    CHECK(b >= 3);
    struct ipr_declog_table *t = NULL;
    CHECK_EQ_INT(ipr_declog_read(path, &t), IPR_OK); /* readable while the writer runs (WAL) */
    ipr_declog_table_free(t);
    ipr_declog_close(log);

    CHECK_EQ_INT(ipr_declog_read(path, &t), IPR_OK);
    CHECK_EQ_INT(t->n, 10);
    CHECK_EQ_INT(t->n_models, 3);
    CHECK_STR(t->models[0], "big");
    CHECK_STR(t->models[2], "mid");
    CHECK_STR(t->ids[3], "id-3");
    CHECK_NEAR(t->quality[3], 0.75, 0);
    CHECK(isnan(t->quality[2]));
    CHECK_EQ_INT(t->chosen[3], 0);
    CHECK_EQ_INT(t->chosen[2], 1);
    CHECK_NEAR(t->pred[3 * 3 + 2], 0.7, 1e-12);
    CHECK(isnan(t->pred[2 * 3 + 2]));
    CHECK_NEAR(t->cost[2 * 3 + 1], 0.001, 1e-15);
    CHECK_NEAR(t->expected_cost[3], 0.01, 1e-15);
    /* replay: served point, calibration, a two-tau sweep */
    double taus[2] = { 0.0, 1.0 };
    char *js = ipr_declog_replay_json(t, IPR_RULE_RANGE, 0, taus, 2);
    CHECK(js != NULL);
    cJSON *rj = cJSON_Parse(js);
    cJSON *served = cJSON_GetObjectItem(rj, "served");
    CHECK_NEAR(cJSON_GetObjectItem(served, "mean_expected_cost")->valuedouble, 0.0055, 1e-12);
    CHECK_EQ_INT(cJSON_GetObjectItem(served, "n_feedback")->valuedouble, 1);
    CHECK_NEAR(cJSON_GetObjectItem(served, "calibration_mae")->valuedouble, 0.15, 1e-12); /* |0.9 - 0.75| */
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(rj, "curve"), 0);
    cJSON *c1 = cJSON_GetArrayItem(cJSON_GetObjectItem(rj, "curve"), 1);
    CHECK_NEAR(cJSON_GetObjectItem(c0, "mean_predicted_quality")->valuedouble, 0.9, 1e-12); /* tau 0: big */
    CHECK_NEAR(cJSON_GetObjectItem(c0, "agreement")->valuedouble, 0.5, 1e-12);
    CHECK_NEAR(cJSON_GetObjectItem(c0, "observed_quality_where_agreeing")->valuedouble, 0.75, 1e-12);
    CHECK_NEAR(cJSON_GetObjectItem(c1, "mean_expected_cost")->valuedouble, 0.001, 1e-12); /* tau 1: small */
    cJSON_Delete(rj);
    free(js);
    ipr_declog_table_free(t);

    /* reopen and append: ids stay unique, old rows stay */
    CHECK_EQ_INT(ipr_declog_open(path, 100, 0.01, &log), IPR_OK);
    struct ipr_declog_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "id-10");
    snprintf(r.model, sizeof r.model, "big");
    CHECK_EQ_INT(ipr_declog_append(log, &r), IPR_OK);
    ipr_declog_close(log); /* flushes */
    CHECK_EQ_INT(ipr_declog_read(path, &t), IPR_OK);
    CHECK_EQ_INT(t->n, 11);
    ipr_declog_table_free(t);

    CHECK(ipr_declog_read("/nonexistent/d.db", &t) != IPR_OK);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static void test_metrics(void)
{
    static struct router_metrics rm; /* zeroed */
    int a = metrics_model_index(&rm, "big"), b = metrics_model_index(&rm, "small");
    CHECK_EQ_INT(a, 0);
    CHECK_EQ_INT(b, 1);
    CHECK_EQ_INT(metrics_model_index(&rm, "big"), 0);
    metrics_decision(&rm, b, 30, 0.001, 0.01, 0);
    metrics_decision(&rm, a, 3000, 0.01, 0.01, 1);
    metrics_upstream(&rm, b, 0.2, 0);
    metrics_upstream(&rm, b, 0.2, 1);
    struct sbuf s = { 0 };
    const char *names[] = { "ipr" };
    struct router_metrics *rms[] = { &rm };
    metrics_render(&s, names, rms, 1);
    CHECK(!s.oom);
    CHECK(strstr(s.p, "ipr_decisions_total{router=\"ipr\",model=\"small\"} 1\n") != NULL);
    CHECK(strstr(s.p, "ipr_decision_latency_seconds_bucket{router=\"ipr\",le=\"5e-05\"} 1\n") != NULL);
    CHECK(strstr(s.p, "ipr_decision_latency_seconds_count{router=\"ipr\"} 2\n") != NULL);
    CHECK(strstr(s.p, "ipr_qe_fallbacks_total{router=\"ipr\"} 1\n") != NULL);
    CHECK(strstr(s.p, "ipr_upstream_errors_total{router=\"ipr\",model=\"small\"} 1\n") != NULL);
    CHECK(strstr(s.p, "ipr_estimated_spend_usd{router=\"ipr\"} 0.011000000\n") != NULL);
    CHECK(strstr(s.p, "ipr_estimated_saving_usd{router=\"ipr\"} 0.009000000\n") != NULL);
    /* each family's TYPE line appears once */
    const char *p = strstr(s.p, "# TYPE ipr_decisions_total");
    CHECK(p && !strstr(p + 1, "# TYPE ipr_decisions_total"));
    free(s.p);
}

TEST_MAIN(test_utf8, test_route_ok, test_route_bad, test_chat, test_feedback, test_config, test_declog, test_metrics)
