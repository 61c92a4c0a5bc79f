/*
 * test_router.c — the router end to end on a generated encoder and dataset:
 * `ipr train` writes a bundle, the router routes by topic and tau, filters,
 * falls back, explains; bundles round-trip byte for byte and every corruption
 * is refused; add-model leaves the untouched sections byte-identical;
 * calibrate finds a tau for each kind of target.
 */
#include "check.h"
#include "cli/cli.h"
#include "ipr/bundle.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/router.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], enc_path[128], enc2_path[128], data_path[128], reg_path[128], reg1_path[128];
static char bundle_path[128], small_path[128], added_path[128];

static const char *const math_words[] = { "add", "sum", "number", "equation", "solve", "integer", "divide", "fraction" };
static const char *const code_words[] = { "python", "function", "string", "list", "return", "loop", "array", "class" };
static const char *const shared_words[] = { "please", "write", "the", "a", "of", "and", "what", "is" };

static int write_file(const char *path, const char *s)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(s, f);
    return fclose(f);
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* A wink-format vocabulary: math words point one way, code words another. */
static void write_vocab(const char *json, double tilt)
{
    FILE *f = fopen(json, "wb");
    const char *const *groups[3] = { shared_words, math_words, code_words };
    fprintf(f, "{\"dimensions\":8,\"size\":24,\"words\":[");
    for (int g = 0, k = 0; g < 3; g++)
        for (int i = 0; i < 8; i++, k++)
            fprintf(f, "%s\"%s\"", k ? "," : "", groups[g][i]);
    fprintf(f, "],\"vectors\":{");
    for (int g = 0, k = 0; g < 3; g++)
        for (int i = 0; i < 8; i++, k++) {
            double v[8];
            for (int j = 0; j < 8; j++)
                v[j] = 0.1 * ((k * 7 + j * 3) % 5) - 0.2 + tilt;
            if (g == 1) v[0] += 2.0;
            if (g == 2) v[1] += 2.0;
            double nrm = 0;
            for (int j = 0; j < 8; j++)
                nrm += v[j] * v[j];
            fprintf(f, "%s\"%s\":[", k ? "," : "", groups[g][i]);
            for (int j = 0; j < 8; j++)
                fprintf(f, "%.4f,", v[j]);
            fprintf(f, "%.4f,%d]", sqrt(nrm), k);
        }
    fprintf(f, "},\"unkVector\":[0,0,0,0,0,0,0,0,0,-1]}\n");
    fclose(f);
}

/* 400 prompts: "math" ones that model A answers and B does not, "code" ones
 * the other way round; C (cheapest) is right a third of the time. */
static void write_data(void)
{
    FILE *f = fopen(data_path, "wb");
    for (int i = 0; i < 400; i++) {
        int math = i % 2 == 0;
        const char *const *w = math ? math_words : code_words;
        fprintf(f, "{\"id\":\"p%d\",\"prompt\":\"please write %s %s of the %s and %s\",\"task\":\"%s\","
                   "\"scores\":{\"A\":%d,\"B\":%d,\"C\":%d}}\n",
                i, w[i % 8], w[(i / 2) % 8], w[(i / 3) % 8], shared_words[i % 8], math ? "math" : "code",
                math, !math, i % 3 == 0);
    }
    fclose(f);
}

static int run(int (*cmd)(int, char **), int argc, const char **argv)
{
    fflush(stdout);
    return cmd(argc, (char **)argv);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ipr-test-router-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    char json[128];
    snprintf(json, sizeof json, "%s/vocab.json", dir);
    snprintf(enc_path, sizeof enc_path, "%s/enc.ipre", dir);
    snprintf(enc2_path, sizeof enc2_path, "%s/enc2.ipre", dir);
    snprintf(data_path, sizeof data_path, "%s/data.jsonl", dir);
    snprintf(reg_path, sizeof reg_path, "%s/registry.json", dir);
    snprintf(reg1_path, sizeof reg1_path, "%s/registry-c.json", dir);
    snprintf(bundle_path, sizeof bundle_path, "%s/r.ipr", dir);
    snprintf(small_path, sizeof small_path, "%s/ab.ipr", dir);
    snprintf(added_path, sizeof added_path, "%s/abc.ipr", dir);
    write_vocab(json, 0.0);
    if (ipr_encoder_convert(json, enc_path) != IPR_OK)
        abort();
    write_vocab(json, 0.05);
    if (ipr_encoder_convert(json, enc2_path) != IPR_OK)
        abort();
    write_data();
    write_file(reg_path,
               "{\"models\":[{\"name\":\"A\",\"family\":\"f1\",\"price_in\":10,\"price_out\":30,\"mean_out_tokens\":100},"
               "{\"name\":\"B\",\"family\":\"f1\",\"price_in\":8,\"price_out\":24,\"mean_out_tokens\":100},"
               "{\"name\":\"C\",\"family\":\"f2\",\"price_in\":0.1,\"price_out\":0.2,\"mean_out_tokens\":100}],"
               "\"fallback\":\"A\"}");
    write_file(reg1_path, "{\"models\":[{\"name\":\"C\",\"family\":\"f2\",\"price_in\":0.1,\"price_out\":0.2,"
                          "\"mean_out_tokens\":100}]}");
    const char *argv[] = { "train", "--quiet", "--data", data_path, "--registry", reg_path, "--encoder", enc_path,
                           "--epochs", "25", "--hidden", "16", "--adapter-hidden", "8", "--seed", "7", "-o", bundle_path };
    if (run(cmd_train, 18, argv) != 0)
        abort();
}

static int route(struct ipr_router *r, struct ipr_router_ctx *c, const char *text, double tau,
                 struct ipr_route_request *q, struct ipr_route_result *res)
{
    q->text = text;
    q->len = strlen(text);
    q->tau = tau;
    return ipr_router_route(r, c, q, res);
}

static void test_route_by_topic(void)
{
    struct ipr_router *r;
    struct ipr_router_ctx *c;
    CHECK_EQ_INT(ipr_router_open(bundle_path, enc_path, &r), IPR_OK);
    CHECK_EQ_INT(ipr_router_ctx_new(r, &c), IPR_OK);
    struct ipr_route_request q = { .rule = -1 };
    struct ipr_route_result res;
    CHECK_EQ_INT(route(r, c, "please solve the equation and add the fraction", 0.0, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.model, 0);
    CHECK(res.pred[0] > res.pred[1] + 0.3);
    CHECK_EQ_INT(route(r, c, "write a python function to return the list", 0.0, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.model, 1);
    CHECK_EQ_INT(route(r, c, "write a python function to return the list", 1.0, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.model, 2); /* tau = 1: the cheapest */
    CHECK_EQ_INT(res.d.fallback_used, 0);
    CHECK(res.cost[2] < res.cost[1] && res.cost[1] < res.cost[0]);

    /* Filters: allowed models and family. */
    const char *only[] = { "A", "C" };
    q.models = only;
    q.n_models = 2;
    CHECK_EQ_INT(route(r, c, "write a python function to return the list", 0.0, &q, &res), IPR_OK);
    CHECK(res.d.model == 0 || res.d.model == 2);
    CHECK_EQ_INT(res.allowed[1], 0);
    q.models = NULL, q.n_models = 0;
    q.family = "f2";
    CHECK_EQ_INT(route(r, c, "solve the equation", 0.0, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.model, 2);

    /* Explanations name every candidate and the choice. */
    q.family = NULL;
    CHECK_EQ_INT(route(r, c, "add the number", 0.0, &q, &res), IPR_OK);
    char *js = ipr_route_result_json(r, &q, &res, 1);
    CHECK(js && strstr(js, "\"model\":\"A\"") && strstr(js, "\"candidates\"") && strstr(js, "\"threshold\""));
    CHECK(js && strstr(js, "\"fallback_used\":false"));
    free(js);

    /* Bad requests. */
    const char *unknown[] = { "A", "nope" };
    q.models = unknown;
    q.n_models = 2;
    CHECK_EQ_INT(route(r, c, "x", 0.0, &q, &res), IPR_ERR_NOTFOUND);
    q.models = NULL, q.n_models = 0;
    CHECK_EQ_INT(route(r, c, "x", 1.5, &q, &res), IPR_ERR_INVAL);
    CHECK_EQ_INT(route(r, c, "x", NAN, &q, &res), IPR_ERR_INVAL);
    q.family = "none";
    CHECK_EQ_INT(route(r, c, "x", 0.5, &q, &res), IPR_ERR_NOTFOUND);
    q.family = "f2";
    const char *a_only[] = { "A" };
    q.models = a_only, q.n_models = 1;
    CHECK_EQ_INT(route(r, c, "x", 0.5, &q, &res), IPR_ERR_INVAL); /* A is not in f2: nothing left */
    q.family = NULL, q.models = NULL, q.n_models = 0;

    /* Empty and invalid-UTF-8 prompts route; an over-long one falls back. */
    CHECK_EQ_INT(route(r, c, "", 0.2, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.fallback_used, 0);
    CHECK_EQ_INT(route(r, c, "\xff\xfe solve \xc3", 0.2, &q, &res), IPR_OK);
    size_t big = ((size_t)9 << 20);
    char *huge = malloc(big + 1);
    memset(huge, 'a', big);
    huge[big] = '\0';
    CHECK_EQ_INT(route(r, c, huge, 0.2, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.fallback_used, 1);
    CHECK_EQ_INT(res.d.model, 0); /* the registry's fallback */
    CHECK(res.reason[0] != '\0');
    js = ipr_route_result_json(r, &q, &res, 1);
    CHECK(js && strstr(js, "\"fallback_used\":true") && strstr(js, "\"threshold\":null"));
    free(js);
    /* Fallback filtered out: the most expensive allowed model stands in. */
    const char *bc[] = { "B", "C" };
    q.models = bc, q.n_models = 2;
    CHECK_EQ_INT(route(r, c, huge, 0.2, &q, &res), IPR_OK);
    CHECK_EQ_INT(res.d.model, 1);
    free(huge);

    /* Batch predictions equal one-by-one predictions bit for bit. */
    const char *texts[3] = { "solve the equation", "python list", "" };
    double P[9], one[3];
    CHECK_EQ_INT(ipr_router_predict_batch(r, texts, 3, 2, P), IPR_OK);
    for (int i = 0; i < 3; i++) {
        ipr_router_predict(r, c, texts[i], strlen(texts[i]), one);
        CHECK(memcmp(one, P + 3 * i, sizeof one) == 0);
    }
    ipr_router_ctx_free(c);
    ipr_router_close(r);
}

static void test_bundle_round_trip_and_corruption(void)
{
    struct ipr_bundle *b;
    char copy[160], bad[160];
    snprintf(copy, sizeof copy, "%s/copy.ipr", dir);
    snprintf(bad, sizeof bad, "%s/bad.ipr", dir);
    CHECK_EQ_INT(ipr_bundle_read(bundle_path, &b), IPR_OK);
    CHECK_EQ_INT(ipr_bundle_write(b, copy), IPR_OK);
    ipr_bundle_free(b);
    size_t n1, n2;
    uint8_t *a = read_all(bundle_path, &n1), *c = read_all(copy, &n2);
    CHECK(n1 == n2 && memcmp(a, c, n1) == 0);
    free(c);

    /* One flipped byte anywhere is refused with a clear error. */
    size_t offsets[] = { 0, 9, 20, 70, n1 / 3, n1 / 2, n1 - 1 };
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        uint8_t *m = malloc(n1);
        memcpy(m, a, n1);
        m[offsets[k]] ^= 0x5a;
        FILE *f = fopen(bad, "wb");
        fwrite(m, 1, n1, f);
        fclose(f);
        free(m);
        int rc = ipr_bundle_read(bad, &b);
        CHECK_MSG(rc == IPR_ERR_FORMAT || rc == IPR_ERR_CHECKSUM || rc == IPR_ERR_VERSION,
                  "offset %zu: rc %d", offsets[k], rc);
        CHECK(strstr(ipr_error_message(), bad) != NULL);
    }
    /* Wrong version, truncation, emptiness, absence. */
    uint8_t *m = malloc(n1);
    memcpy(m, a, n1);
    m[8] = 99;
    FILE *f = fopen(bad, "wb");
    fwrite(m, 1, n1, f);
    fclose(f);
    CHECK_EQ_INT(ipr_bundle_read(bad, &b), IPR_ERR_VERSION);
    size_t cuts[] = { 0, 10, 64, n1 - 1 };
    for (size_t k = 0; k < 4; k++) {
        f = fopen(bad, "wb");
        fwrite(a, 1, cuts[k], f);
        fclose(f);
        CHECK_EQ_INT(ipr_bundle_read(bad, &b), IPR_ERR_FORMAT);
    }
    free(m);
    free(a);
    CHECK_EQ_INT(ipr_bundle_read("/nonexistent/r.ipr", &b), IPR_ERR_NOTFOUND);

    /* A bundle opened with another encoder is refused. */
    struct ipr_router *r;
    CHECK_EQ_INT(ipr_router_open(bundle_path, enc2_path, &r), IPR_ERR_CHECKSUM);
    CHECK(strstr(ipr_error_message(), "encoder") != NULL);
}

static void test_add_model(void)
{
    const char *argv[] = { "train", "--quiet", "--data", data_path, "--registry", reg_path, "--encoder", enc_path,
                           "--models", "A,B", "--epochs", "25", "--hidden", "16", "--adapter-hidden", "8", "--seed", "7",
                           "-o", small_path };
    CHECK_EQ_INT(run(cmd_train, 20, argv), 0);
    const char *add[] = { "add-model", "--quiet", "--router", small_path, "--model", "C", "--data", data_path,
                          "--registry", reg1_path, "--encoder", enc_path, "-o", added_path };
    CHECK_EQ_INT(run(cmd_add_model, 14, add), 0);
    struct ipr_bundle *b0, *b1;
    CHECK_EQ_INT(ipr_bundle_read(small_path, &b0), IPR_OK);
    CHECK_EQ_INT(ipr_bundle_read(added_path, &b1), IPR_OK);
    CHECK_EQ_INT(b0->reg->n, 2);
    CHECK_EQ_INT(b1->reg->n, 3);
    CHECK_STR(b1->reg->models[2].name, "C");
    CHECK(strcmp(b0->meta.metrics_json, b1->meta.metrics_json) == 0);
    uint8_t *q0, *q1, *v0, *v1;
    size_t l0, l1, vl0, vl1;
    CHECK_EQ_INT(ipr_qe_save(b0->qe[0], &q0, &l0), IPR_OK);
    CHECK_EQ_INT(ipr_qe_save(b1->qe[0], &q1, &l1), IPR_OK);
    CHECK_EQ_INT(ipr_view_save(b0->view, &v0, &vl0), IPR_OK);
    CHECK_EQ_INT(ipr_view_save(b1->view, &v1, &vl1), IPR_OK);
    CHECK(vl0 == vl1 && memcmp(v0, v1, vl0) == 0);
    CHECK(l1 > l0);
    /* Every estimator of the ensemble kept its old parts: the old blob less its
     * 32-byte end marker is a prefix of the new one. */
    CHECK_EQ_INT(b0->n_qe, 2); /* the default ensemble */
    CHECK_EQ_INT(b1->n_qe, b0->n_qe);
    for (size_t k = 0; k < b0->n_qe && k < b1->n_qe; k++) {
        uint8_t *a0, *a1;
        size_t n0, n1;
        CHECK_EQ_INT(ipr_qe_save(b0->qe[k], &a0, &n0), IPR_OK);
        CHECK_EQ_INT(ipr_qe_save(b1->qe[k], &a1, &n1), IPR_OK);
        CHECK(n0 > 32 && n1 > n0 && memcmp(a0, a1, n0 - 32) == 0);
        free(a0), free(a1);
    }
    /* The original models' predictions are unchanged to the bit. */
    size_t d = ipr_qe_dim(b0->qe[0]);
    CHECK_EQ_INT(ipr_qe_dim(b1->qe[0]), d);
    float *x = calloc(d, sizeof *x), *s0 = calloc(ipr_bundle_scratch_floats(b0) + 1, sizeof *s0);
    float *s1 = calloc(ipr_bundle_scratch_floats(b1) + 1, sizeof *s1);
    double p0[3], p1[3];
    for (size_t i = 0; i < d; i++)
        x[i] = (float)(i % 5) * 0.1f;
    ipr_bundle_predict(b0, x, s0, p0);
    ipr_bundle_predict(b1, x, s1, p1);
    CHECK(memcmp(p0, p1, 2 * sizeof *p0) == 0);
    free(x), free(s0), free(s1);
    free(q0), free(q1), free(v0), free(v1);
    ipr_bundle_free(b0);
    ipr_bundle_free(b1);

    /* Adding a model the bundle already has, or one without labels, fails. */
    const char *again[] = { "add-model", "--quiet", "--router", added_path, "--model", "C", "--data", data_path,
                            "--registry", reg1_path, "--encoder", enc_path, "-o", added_path };
    CHECK(run(cmd_add_model, 14, again) != 0);
    const char *nolabel[] = { "add-model", "--quiet", "--router", small_path, "--model", "D", "--data", data_path,
                              "--price-in", "1", "--price-out", "1", "--mean-out-tokens", "10",
                              "--encoder", enc_path, "-o", added_path };
    CHECK(run(cmd_add_model, 18, nolabel) != 0);
}

static void test_calibrate(void)
{
    char out[160];
    snprintf(out, sizeof out, "%s/cal.ipr", dir);
    const char *a1[] = { "calibrate", "--router", bundle_path, "--encoder", enc_path, "--data", data_path,
                         "--target", "quality=0.9", "-o", out };
    CHECK_EQ_INT(run(cmd_calibrate, 11, a1), 0);
    struct ipr_bundle *b;
    CHECK_EQ_INT(ipr_bundle_read(out, &b), IPR_OK);
    CHECK(b->meta.default_tau >= 0 && b->meta.default_tau <= 1);
    ipr_bundle_free(b);
    const char *a2[] = { "calibrate", "--router", bundle_path, "--encoder", enc_path, "--data", data_path,
                         "--target", "share:A=0.1" };
    CHECK_EQ_INT(run(cmd_calibrate, 9, a2), 0);
    const char *a3[] = { "calibrate", "--router", bundle_path, "--encoder", enc_path, "--data", data_path,
                         "--target", "cost=0.0000001" };
    CHECK(run(cmd_calibrate, 9, a3) != 0); /* cheaper than the cheapest model: not reachable */
    const char *a4[] = { "calibrate", "--router", bundle_path, "--encoder", enc_path, "--data", data_path,
                         "--target", "share:nope=0.1" };
    CHECK(run(cmd_calibrate, 9, a4) != 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

TEST_MAIN(setup, test_route_by_topic, test_bundle_round_trip_and_corruption, test_add_model, test_calibrate, teardown)
