/* test_eval_cmd.c — drives `ipr eval` (cmd_eval) in-process under the
 * sanitizers: every output (JSON, SVG linear and log, Markdown, dumps of the
 * oracle and random baselines) and the error exits, so memory errors and
 * leaks in the command, the plot writer and the dump writer are caught. */
#include "check.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
    char p[128];
    path(p, sizeof p, name);
    FILE *f = fopen(p, "w");
    if (!f) { CHECK(0); return; }
    fputs(text, f);
    fclose(f);
}

static long file_size(const char *name)
{
    char p[128];
    path(p, sizeof p, name);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int run(int argc, const char **argv)
{
    char *args[32];
    for (int i = 0; i < argc && i < 32; i++)
        args[i] = (char *)argv[i];
    fflush(stdout);
    return cmd_eval(argc, args);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ipr_test_eval_%ld", (long)getpid());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    CHECK(system(cmd) == 0);
    /* 6 prompts, 3 models with different prices; one missing label; prompt
     * "p4" has no costs (registry estimate used). */
    write_file("test.jsonl",
        "{\"id\":\"p0\",\"prompt\":\"add two numbers\",\"scores\":{\"a\":1,\"b\":1,\"c\":0},\"costs\":{\"a\":0.01,\"b\":0.002,\"c\":0.0005}}\n"
        "{\"id\":\"p1\",\"prompt\":\"prove a theorem\",\"scores\":{\"a\":1,\"b\":0,\"c\":0},\"costs\":{\"a\":0.01,\"b\":0.002,\"c\":0.0005}}\n"
        "{\"id\":\"p2\",\"prompt\":\"say hi\",\"scores\":{\"a\":1,\"b\":1,\"c\":1},\"costs\":{\"a\":0.01,\"b\":0.002,\"c\":0.0005}}\n"
        "{\"id\":\"p3\",\"prompt\":\"write a <poem> & \\\"more\\\"\",\"scores\":{\"a\":0.5,\"c\":0.75},\"costs\":{\"a\":0.01,\"b\":0.002,\"c\":0.0005}}\n"
        "{\"id\":\"p4\",\"prompt\":\"translate\",\"scores\":{\"a\":0,\"b\":1,\"c\":0}}\n"
        "{\"id\":\"p5\",\"prompt\":\"sort a list\",\"scores\":{\"a\":1,\"b\":0,\"c\":1},\"costs\":{\"a\":0.01,\"b\":0.002,\"c\":0.0005}}\n");
    write_file("reg.json",
        "{\"models\":[{\"name\":\"a\",\"price_in\":100,\"price_out\":100,\"mean_out_tokens\":50},"
        "{\"name\":\"b\",\"price_in\":20,\"price_out\":20,\"mean_out_tokens\":50},"
        "{\"name\":\"c\",\"price_in\":5,\"price_out\":5,\"mean_out_tokens\":50}],\"fallback\":\"a\"}\n");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static void test_outputs(void)
{
    setup();
    char data[128], reg[128], js[128], svg[128], md[128], dump[128];
    path(data, sizeof data, "test.jsonl");
    path(reg, sizeof reg, "reg.json");
    path(js, sizeof js, "r.json");
    path(svg, sizeof svg, "r.svg");
    path(md, sizeof md, "r.md");
    path(dump, sizeof dump, "d.jsonl");
    const char *a1[] = { "eval", "--data", data, "--registry", reg, "--json", js, "--svg", svg,
                         "--markdown", md, "--dump", dump, "--dump-router", "random", "--threads", "2" };
    CHECK_EQ_INT(run(17, a1), 0);
    CHECK(file_size("r.json") > 1000);
    CHECK(file_size("r.svg") > 1000);
    CHECK(file_size("r.md") > 100);
    CHECK(file_size("d.jsonl") > 6 * 101 * 20);
    const char *a2[] = { "eval", "--data", data, "--registry", reg, "--svg", svg, "--log-x",
                         "--dump", dump, "--rule", "dynmax", "--delta", "0.1" };
    CHECK_EQ_INT(run(14, a2), 0);
    const char *a3[] = { "eval", "--data", data, "--registry", reg, "--models", "a,c", "--rule", "difference" };
    CHECK_EQ_INT(run(9, a3), 0);
    teardown();
}

static void test_errors(void)
{
    setup();
    char data[128], reg[128], bad[128];
    path(data, sizeof data, "test.jsonl");
    path(reg, sizeof reg, "reg.json");
    path(bad, sizeof bad, "missing.jsonl");
    const char *e1[] = { "eval", "--data", bad, "--registry", reg };
    CHECK_EQ_INT(run(5, e1), 1);
    const char *e2[] = { "eval", "--data", data, "--registry", reg, "--models", "a,zzz" };
    CHECK_EQ_INT(run(7, e2), 1);
    const char *e3[] = { "eval", "--data", data, "--registry", reg, "--models", "a" };
    CHECK_EQ_INT(run(7, e3), 1); /* one candidate is not a choice */
    const char *e4[] = { "eval", "--data", data };
    CHECK_EQ_INT(run(3, e4), 2);
    const char *e5[] = { "eval", "--data", data, "--registry", reg, "--seed", "-3" };
    CHECK_EQ_INT(run(7, e5), 2);
    const char *e6[] = { "eval", "--data", data, "--registry", reg, "--expected-cost", "guess" };
    CHECK_EQ_INT(run(7, e6), 1);
    /* without a registry, p4's missing costs cannot be estimated */
    char tr[128];
    path(tr, sizeof tr, "test.jsonl");
    const char *e7[] = { "eval", "--data", data, "--train", tr, "--expected-cost", "mean-train" };
    CHECK_EQ_INT(run(7, e7), 1);
    teardown();
}

/* Router mode end to end when the default encoder is installed: train a
 * small router with cmd_train, then evaluate it with the k-NN baseline (the
 * threaded prediction and embedding paths) and dump its decisions. */
static void test_router_mode(void)
{
    char enc[1024];
    const char *home = getenv("IPR_HOME");
    snprintf(enc, sizeof enc, "%s/encoder/glove6b-100d.ipre", home ? home : "");
    if (!home) {
        const char *h = getenv("HOME");
        snprintf(enc, sizeof enc, "%s/.cache/ipr/encoder/glove6b-100d.ipre", h ? h : "");
    }
    if (access(enc, R_OK) != 0) {
        fprintf(stderr, "  skip: no encoder at %s\n", enc);
        return;
    }
    setup();
    char train[128], data[128], reg[128], router[128], dump[128], js[128];
    path(train, sizeof train, "train.jsonl");
    path(data, sizeof data, "test.jsonl");
    path(reg, sizeof reg, "reg.json");
    path(router, sizeof router, "r.ipr");
    path(dump, sizeof dump, "d.jsonl");
    path(js, sizeof js, "r.json");
    FILE *f = fopen(train, "w");
    if (!f) { CHECK(0); teardown(); return; }
    static const char *const words[6] = { "sum", "prove", "poem", "list", "hello", "translate" };
    for (int i = 0; i < 120; i++) {
        int w = i % 6;
        fprintf(f, "{\"id\":\"t%d\",\"prompt\":\"%s item %d\",\"scores\":{\"a\":1,\"b\":%d,\"c\":%d},"
                   "\"costs\":{\"a\":0.01,\"b\":0.002,\"c\":0.0005}}\n", i, words[w], i, w < 3, w == 0);
    }
    fclose(f);
    char *ta[] = { "train", "--data", train, "--registry", reg, "-o", router, "--encoder", enc, "--epochs", "3" };
    fflush(stdout);
    int rc = cmd_train(11, ta);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        const char *a[] = { "eval", "--router", router, "--encoder", enc, "--data", data, "--train", train,
                            "--dump", dump, "--json", js, "--threads", "3", "--knn-k", "5" };
        CHECK_EQ_INT(run(17, a), 0);
        CHECK(file_size("d.jsonl") > 3 * 101 * 6 * 20);
    }
    teardown();
}

TEST_MAIN(test_outputs, test_errors, test_router_mode)
