/* test_data_import.c — the importers (RouterBench CSV with its Python list
 * literals, RouterDC and LLMRouter JSON) on small fixtures written here, the
 * registry (parse, errors, round trip, expected cost) and the `ipr import` /
 * `ipr data` commands end to end, including "a failed import writes nothing". */
#include "check.h"
#include "cli/cli.h"
#include "ipr/data.h"
#include "ipr/err.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static const char *tmp(const char *name)
{
    static char p[64][256];
    static int k;
    k = (k + 1) % 64;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

#define HEADER ",sample_id,prompt,eval_name,m1,m2,m1|model_response,m2|model_response,m1|total_cost,m2|total_cost,oracle_model_to_route_to\n"

static const char *csv_ok =
    HEADER
    "7,s.1,\"['Write a python function to add, carefully.']\",mbpp,1.0,0.0,\"['def f(): \"\"hi\"\"\\n']\",x,0.002,1e-05,m1\n"
    "8,s.2,\"['It\\'s a \\\"\"quote\\\"\" \\\\ back\\tslash\\nnew line', \"\"dq \\\"\"x\\\"\" it's\"\", 'caf\\xe9 \\u4e2d \\U0001F600']\",arc,,1,\"multi\n"
    "line, response\",,,0.5,m2\r\n"
    "9,s.1,['plain'],mbpp,0,1,a,b,0.1,0.2,m2\n"
    "10,s.3,\"[\n  'spread',\n  'over lines',\n]\",arc,0.5,,,,,,\n";

static void test_routerbench(void)
{
    struct ipr_dataset *ds = ipr_dataset_new();
    int rc = ipr_import_buffer(ds, IPR_IMPORT_ROUTERBENCH, csv_ok, strlen(csv_ok), "x.csv");
    CHECK_MSG(rc == IPR_OK, "%s", ipr_error_message());
    CHECK_EQ_INT(ds->n, 4);
    CHECK_EQ_INT(ds->n_models, 2); /* responses and the oracle column are dropped */
    if (ds->n == 4 && ds->n_models == 2) {
        CHECK_STR(ds->models[0], "m1");
        CHECK_STR(ds->prompts[0].id, "s.1");
        CHECK_STR(ds->prompts[0].text, "Write a python function to add, carefully.");
        CHECK_STR(ds->prompts[0].task, "mbpp");
        CHECK_STR(ds->prompts[1].text,
                  "It's a \"quote\" \\ back\tslash\nnew line\ndq \"x\" it's\ncaf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80");
        CHECK_STR(ds->prompts[2].id, "s.1#9"); /* repeated sample_id: row index appended */
        CHECK_STR(ds->prompts[2].text, "plain");
        CHECK_STR(ds->prompts[3].text, "spread\nover lines");
        CHECK_NEAR(*ipr_dataset_score(ds, 0, 0), 1.0, 0);
        CHECK_NEAR(*ipr_dataset_score(ds, 0, 1), 0.0, 0);
        CHECK(isnan(*ipr_dataset_score(ds, 1, 0)));     /* empty label cell */
        CHECK(isnan(*ipr_dataset_cost(ds, 1, 0)));      /* empty cost cell */
        CHECK_NEAR(*ipr_dataset_cost(ds, 0, 1), 1e-05, 0);
        CHECK_NEAR(*ipr_dataset_cost(ds, 1, 1), 0.5, 0);
        CHECK(isnan(*ipr_dataset_score(ds, 3, 1)));
    }
    ipr_dataset_free(ds);
}

static void bad_csv(const char *body, int code, const char *want)
{
    char *buf = malloc(strlen(HEADER) + strlen(body) + 1);
    strcpy(buf, HEADER);
    strcat(buf, body);
    struct ipr_dataset *ds = ipr_dataset_new();
    int rc = ipr_import_buffer(ds, IPR_IMPORT_ROUTERBENCH, buf, strlen(buf), "f.csv");
    CHECK_MSG(rc == code, "got %d (%s), want %d", rc, ipr_error_message(), code);
    CHECK_MSG(strstr(ipr_error_message(), want) != NULL, "message \"%s\" lacks \"%s\"", ipr_error_message(), want);
    ipr_dataset_free(ds);
    free(buf);
}

static void test_routerbench_bad(void)
{
    const char *row = "1,a,['x'],t,1,0,r,r,0.1,0.1,m1\n";
    char two[256];
    snprintf(two, sizeof two, "%s%s", row, "2,b,\"['unterminated],t,1,0,r,r,0.1,0.1,m1\n");
    bad_csv(two, IPR_ERR_FORMAT, "f.csv:3: file ends inside a quoted cell");
    snprintf(two, sizeof two, "%s%s", row, "2,b,['x'],t,1,0\n");
    bad_csv(two, IPR_ERR_FORMAT, "f.csv:3: 6 cells, the header has 11");
    bad_csv("1,a,['x'],t,yes,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: column \"m1\": \"yes\" is not a number");
    bad_csv("1,a,['x'],t,2,0,r,r,0.1,0.1,m1\n", IPR_ERR_INVAL, "f.csv:2: label 2 of \"m1\" is outside [0,1]");
    bad_csv("1,a,['x'],t,1,0,r,r,-0.1,0.1,m1\n", IPR_ERR_INVAL, "f.csv:2: negative cost");
    bad_csv("1,a,\"['x' 'y\"\"]\",t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: prompt cell: unterminated string");
    bad_csv("1,a,\"['\\ud800']\",t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: prompt cell: escape is not a valid Unicode");
    bad_csv("1,a,\"['\\xZZ']\",t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "bad hex digit");
    bad_csv("1,a,\"['x'] junk\",t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "extra characters after the prompt list");
    bad_csv("1,a,['x' 3],t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "expected ',' or ']'");
    bad_csv("1,a,['x'],t,1,0,r\"r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: quote inside an unquoted cell");
    bad_csv("1,a,\"['x']\"z,t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: unexpected character after a closing quote");
    bad_csv("1,,['x'],t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: empty sample_id");
    bad_csv("1,a,['caf\xc3'],t,1,0,r,r,0.1,0.1,m1\n", IPR_ERR_FORMAT, "f.csv:2: invalid UTF-8");
    bad_csv("", IPR_ERR_FORMAT, "no data rows");
    struct ipr_dataset *ds = ipr_dataset_new();
    CHECK_EQ_INT(ipr_import_buffer(ds, IPR_IMPORT_ROUTERBENCH, "", 0, "e.csv"), IPR_ERR_FORMAT);
    CHECK(strstr(ipr_error_message(), "e.csv:1: empty file") != NULL);
    const char *nohdr = "a,b\n1,2\n";
    CHECK_EQ_INT(ipr_import_buffer(ds, IPR_IMPORT_ROUTERBENCH, nohdr, strlen(nohdr), "h.csv"), IPR_ERR_FORMAT);
    CHECK(strstr(ipr_error_message(), "h.csv:1: header needs") != NULL);
    ipr_dataset_free(ds);
}

static void test_json_importers(void)
{
    const char *dc = "[{\"question\": \"Q0\", \"scores\": {\"a\": 0.25, \"b\": 1}, \"cluster_id\": 3},\n"
                     " {\"question\": \"\\u4e2d\\u6587\", \"scores\": {\"b\": 0, \"c\": null, \"a\": true}}]";
    struct ipr_dataset *ds = ipr_dataset_new();
    int rc = ipr_import_buffer(ds, IPR_IMPORT_ROUTERDC, dc, strlen(dc), "dir/mmlu_train.json");
    CHECK_MSG(rc == IPR_OK, "%s", ipr_error_message());
    CHECK_EQ_INT(ds->n, 2);
    CHECK_EQ_INT(ds->n_models, 3);
    if (ds->n == 2) {
        CHECK_STR(ds->prompts[0].id, "mmlu_train.0");
        CHECK_STR(ds->prompts[1].id, "mmlu_train.1");
        CHECK_STR(ds->prompts[0].task, "mmlu");
        CHECK_STR(ds->prompts[1].text, "\xe4\xb8\xad\xe6\x96\x87");
        CHECK_NEAR(*ipr_dataset_score(ds, 0, 0), 0.25, 0);
        CHECK_NEAR(*ipr_dataset_score(ds, 1, 0), 1.0, 0);
        CHECK(isnan(*ipr_dataset_score(ds, 1, 2)));
    }
    /* the same file again: duplicate ids */
    rc = ipr_import_buffer(ds, IPR_IMPORT_ROUTERDC, dc, strlen(dc), "dir/mmlu_train.json");
    CHECK_EQ_INT(rc, IPR_ERR_INVAL);
    CHECK(strstr(ipr_error_message(), "duplicate id \"mmlu_train.0\"") != NULL);
    ipr_dataset_free(ds);

    ds = ipr_dataset_new();
    rc = ipr_import_buffer(ds, IPR_IMPORT_LLMROUTER, dc, strlen(dc), "x/gsm8k-test.json.gz");
    CHECK_EQ_INT(rc, IPR_OK);
    if (ds->n == 2) { CHECK_STR(ds->prompts[0].task, "llmrouter"); CHECK_STR(ds->prompts[0].id, "gsm8k-test.0"); }
    ipr_dataset_free(ds);

    struct { const char *text; int code; const char *want; } bad[] = {
        { "[{\"question\": \"a\", \"scores\": {}},\n{\"question\": \"b\", \"scores\": {\"m\": 1.5}}]", IPR_ERR_INVAL,
          "t.json:2: item 1: score 1.5 of \"m\" is outside [0,1]" },
        { "[\n{\"question\": \"a\", \"scores\": {}},\n\n  {\"scores\": {}}]", IPR_ERR_FORMAT, "t.json:4: item 1: missing string field \"question\"" },
        { "[{\"question\": \"a\"}]", IPR_ERR_FORMAT, "t.json:1: item 0: missing object field \"scores\"" },
        { "[{\"question\": \"a\", \"scores\": {\"m\": \"x\"}}]", IPR_ERR_FORMAT, "score of \"m\" is not a number" },
        { "[{\"question\": \"a\",\n \"scores\": {\"m\": 1}},\n", IPR_ERR_FORMAT, "t.json:3: file ends inside the JSON document" },
        { "[{\"question\": \"a\",\n \"scores\": {\"m\": 1}} }]", IPR_ERR_FORMAT, "t.json:2: malformed JSON" },
        { "", IPR_ERR_FORMAT, "t.json:1: empty file" },
        { "[]", IPR_ERR_FORMAT, "t.json:1: the array is empty" },
        { "{\"question\": \"a\"}", IPR_ERR_FORMAT, "t.json:1: expected a JSON array" },
        { "[1]", IPR_ERR_FORMAT, "t.json:1: item 0 is not an object" },
        { "[{\"question\": \"\xc3\x28\", \"scores\": {}}]", IPR_ERR_FORMAT, "t.json:1: invalid UTF-8" },
        { "[{\"question\": \"\\ud800\", \"scores\": {}}]", IPR_ERR_FORMAT, "" },
        { "[] x", IPR_ERR_FORMAT, "extra characters" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ds = ipr_dataset_new();
        rc = ipr_import_buffer(ds, IPR_IMPORT_ROUTERDC, bad[k].text, strlen(bad[k].text), "t.json");
        CHECK_MSG(rc == bad[k].code, "case %zu: got %d (%s)", k, rc, ipr_error_message());
        CHECK_MSG(strstr(ipr_error_message(), bad[k].want) != NULL, "case %zu: \"%s\" lacks \"%s\"", k,
                  ipr_error_message(), bad[k].want);
        ipr_dataset_free(ds);
    }
}

static const char *reg_ok =
    "{\"models\": [\n"
    "  {\"name\": \"big\", \"family\": \"f\", \"price_in\": 10, \"price_out\": 30, \"mean_out_tokens\": 200,\n"
    "   \"upstream\": {\"base_url\": \"http://127.0.0.1:9/v1\", \"api_key_env\": \"KEY\", \"model\": \"big-2\"}},\n"
    "  {\"name\": \"small\", \"price_in\": 0.2, \"price_out\": 0.2}\n"
    "], \"fallback\": \"big\"}\n";

static void test_registry(void)
{
    struct ipr_registry *reg = NULL, *again = NULL, *copy = NULL;
    int rc = ipr_registry_parse(reg_ok, strlen(reg_ok), "r.json", &reg);
    CHECK_MSG(rc == IPR_OK, "%s", ipr_error_message());
    if (!reg) return;
    CHECK_EQ_INT(reg->n, 2);
    CHECK_STR(reg->fallback, "big");
    CHECK_EQ_INT(ipr_registry_find(reg, "small"), 1);
    CHECK_EQ_INT(ipr_registry_find(reg, "none"), -1);
    CHECK_EQ_INT(reg->models[0].has_upstream, 1);
    CHECK_STR(reg->models[0].upstream.api_key_env, "KEY");
    CHECK(reg->models[1].family == NULL);
    CHECK_NEAR(reg->models[1].mean_out_tokens, 0, 0);
    CHECK_NEAR(ipr_registry_expected_cost(reg, 0, 1000), 1000 * 10 / 1e6 + 200 * 30 / 1e6, 1e-15);
    CHECK(isnan(ipr_registry_expected_cost(reg, 5, 10)));
    /* to_json / parse / write / read round trip */
    char *js = ipr_registry_to_json(reg);
    CHECK(js != NULL);
    CHECK_EQ_INT(ipr_registry_parse(js, strlen(js), "rt", &again), IPR_OK);
    CHECK(again && again->n == 2 && again->models[0].price_out == 30 && !strcmp(again->models[0].upstream.model, "big-2"));
    free(js);
    ipr_registry_free(again); again = NULL;
    CHECK_EQ_INT(ipr_registry_write(reg, tmp("reg.json")), IPR_OK);
    CHECK_EQ_INT(ipr_registry_read(tmp("reg.json"), &again), IPR_OK);
    CHECK(again && again->n == 2 && !strcmp(again->fallback, "big"));
    CHECK_EQ_INT(ipr_registry_copy(reg, &copy), IPR_OK);
    ipr_registry_free(reg);
    CHECK(copy && !strcmp(copy->models[0].upstream.base_url, "http://127.0.0.1:9/v1") && !strcmp(copy->fallback, "big"));
    ipr_registry_free(copy);
    ipr_registry_free(again);

    struct { const char *text; int code; const char *want; } bad[] = {
        { "{\"models\": [{\"price_in\": 1, \"price_out\": 1}]}", IPR_ERR_FORMAT, "r.json: models[0]: missing \"name\"" },
        { "{\"models\": [{\"name\": \"a\", \"price_in\": -1, \"price_out\": 1}]}", IPR_ERR_INVAL, "models[0] (\"a\"): \"price_in\" is -1" },
        { "{\"models\": [{\"name\": \"a\", \"price_in\": 1, \"price_out\": 1}, {\"name\": \"a\", \"price_in\": 1, \"price_out\": 1}]}",
          IPR_ERR_INVAL, "models[1]: duplicate model \"a\"" },
        { "{\"models\": [{\"name\": \"a\", \"price_in\": 1, \"price_out\": 1}], \"fallback\": \"b\"}", IPR_ERR_NOTFOUND,
          "fallback \"b\" is not one of the models" },
        { "{\"models\": [{\"name\": \"a\", \"price_in\": 1}]}", IPR_ERR_FORMAT, "missing \"price_out\"" },
        { "{\"models\": [{\"name\": \"a\", \"price_in\": 1, \"price_out\": 1, \"mean_out_tokens\": -5}]}", IPR_ERR_INVAL, "mean_out_tokens" },
        { "{\"models\": [{\"name\": \"a\", \"price_in\": 1, \"price_out\": 1, \"upstream\": {}}]}", IPR_ERR_FORMAT, "base_url" },
        { "{\"models\": []}", IPR_ERR_FORMAT, "\"models\" is empty" },
        { "{\"models\": [\n{\"name\": \"a\",\n \"price_in\": 1,, }]}", IPR_ERR_FORMAT, "r.json:3: malformed JSON" },
        { "", IPR_ERR_FORMAT, "malformed JSON" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        reg = (struct ipr_registry *)1;
        rc = ipr_registry_parse(bad[k].text, strlen(bad[k].text), "r.json", &reg);
        CHECK_MSG(rc == bad[k].code, "case %zu: got %d (%s)", k, rc, ipr_error_message());
        CHECK_MSG(strstr(ipr_error_message(), bad[k].want) != NULL, "case %zu: \"%s\" lacks \"%s\"", k,
                  ipr_error_message(), bad[k].want);
        CHECK(reg == NULL);
    }
}

static int run(int argc, const char **argv, int (*fn)(int, char **))
{
    return fn(argc, (char **)argv);
}

static void test_cli(void)
{
    const char *csv = tmp("rb.csv"), *out = tmp("rb.jsonl");
    put(csv, csv_ok);
    const char *a1[] = { "import", "--format", "routerbench", csv, "-o", out };
    CHECK_EQ_INT(run(6, a1, cmd_import), 0);
    struct ipr_dataset *ds = NULL;
    CHECK_EQ_INT(ipr_dataset_read(out, &ds), IPR_OK);
    CHECK(ds && ds->n == 4);
    ipr_dataset_free(ds);
    /* a bad second input: nothing is written */
    const char *bad = tmp("bad.csv"), *out2 = tmp("never.jsonl");
    put(bad, HEADER "1,a,['x'],t,7,0,r,r,0.1,0.1,m1\n");
    const char *a2[] = { "import", "--format", "routerbench", csv, bad, "-o", out2 };
    CHECK_EQ_INT(run(7, a2, cmd_import), 1);
    CHECK(!exists(out2));
    const char *a3[] = { "import", "--format", "nope", csv, "-o", out2 };
    CHECK_EQ_INT(run(6, a3, cmd_import), 2);
    const char *a4[] = { "import", csv };
    CHECK_EQ_INT(run(2, a4, cmd_import), 2);

    const char *s1[] = { "data", "stats", out };
    CHECK_EQ_INT(run(3, s1, cmd_data), 0);
    const char *s2[] = { "data", "stats", tmp("missing.jsonl") };
    CHECK_EQ_INT(run(3, s2, cmd_data), 1);
    const char *prefix = tmp("sp");
    const char *s3[] = { "data", "split", out, "--val", "0.25", "--test", "0.25", "-o", prefix };
    CHECK_EQ_INT(run(9, s3, cmd_data), 0);
    size_t total = 0;
    const char *parts[3] = { "sp.train.jsonl", "sp.val.jsonl", "sp.test.jsonl" };
    for (int k = 0; k < 3; k++) {
        struct ipr_dataset *p = NULL;
        if (exists(tmp(parts[k])) && ipr_dataset_read(tmp(parts[k]), &p) == IPR_OK) total += p->n;
        ipr_dataset_free(p);
    }
    CHECK_EQ_INT(total, 4);
    const char *s4[] = { "data", "split", out, "--val", "0.8", "--test", "0.8", "-o", prefix };
    CHECK_EQ_INT(run(9, s4, cmd_data), 2);

    /* fit-registry: mean_out_tokens such that the expected cost matches */
    const char *reg = tmp("r.json"), *fitted = tmp("fit.json");
    put(reg, "{\"models\": [{\"name\": \"m1\", \"price_in\": 1, \"price_out\": 2},"
             " {\"name\": \"m2\", \"price_in\": 1, \"price_out\": 2}], \"fallback\": \"m1\"}");
    const char *f1[] = { "data", "fit-registry", out, "--registry", reg, "-o", fitted };
    CHECK_EQ_INT(run(7, f1, cmd_data), 0);
    struct ipr_registry *r = NULL;
    CHECK_EQ_INT(ipr_registry_read(fitted, &r), IPR_OK);
    CHECK_EQ_INT(ipr_dataset_read(out, &ds), IPR_OK);
    if (r && ds) {
        for (size_t m = 0; m < 2; m++) {
            double e = 0, c = 0;
            size_t nc = 0;
            for (size_t i = 0; i < ds->n; i++) {
                double x = *ipr_dataset_cost(ds, i, m);
                if (isnan(x)) continue;
                c += x; nc++;
                e += ipr_registry_expected_cost(r, m, ipr_count_tokens(ds->prompts[i].text, strlen(ds->prompts[i].text)));
            }
            CHECK_NEAR(e / (double)nc, c / (double)nc, 1e-6);
        }
    }
    ipr_registry_free(r);
    ipr_dataset_free(ds);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ipr_test_import.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TEST_MAIN(setup, test_routerbench, test_routerbench_bad, test_json_importers, test_registry, test_cli, teardown)
