/* test_data.c — the canonical dataset: building, JSON Lines round trips (plain
 * and gzip), every kind of bad input with the file:line it must name, the
 * checksum, the hash split, subsets and the token counter. */
#include "check.h"
#include "ipr/data.h"
#include "ipr/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static const char *tmp(const char *name)
{
    static char p[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static struct ipr_dataset *sample(void)
{
    struct ipr_dataset *ds = ipr_dataset_new();
    CHECK_EQ_INT(ipr_dataset_add_model(ds, "a"), 0);
    CHECK_EQ_INT(ipr_dataset_add(ds, "p1", "Hello \"world\"\n\ttab \\ back", "t1"), 0);
    CHECK_EQ_INT(ipr_dataset_add_model(ds, "b"), 1); /* after a row: re-strides */
    CHECK_EQ_INT(ipr_dataset_add_model(ds, "a"), 0);
    CHECK_EQ_INT(ipr_dataset_add(ds, "p2", "Unicode: caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \x01", NULL), 1);
    CHECK_EQ_INT(ipr_dataset_add_model(ds, "c"), 2); /* never labelled */
    CHECK_EQ_INT(ipr_dataset_add(ds, "p3", "", "t1"), 2);
    *ipr_dataset_score(ds, 0, 0) = 1.0;
    *ipr_dataset_score(ds, 0, 1) = 0.1;
    *ipr_dataset_cost(ds, 0, 0) = 0.00213;
    *ipr_dataset_score(ds, 1, 1) = 1.0 / 3.0;
    *ipr_dataset_cost(ds, 1, 1) = 4e-05;
    *ipr_dataset_score(ds, 2, 0) = 0.0;
    return ds;
}

static int same(const struct ipr_dataset *a, const struct ipr_dataset *b)
{
    if (a->n != b->n || a->n_models != b->n_models) return 0;
    for (size_t m = 0; m < a->n_models; m++) if (strcmp(a->models[m], b->models[m])) return 0;
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->prompts[i].id, b->prompts[i].id) || strcmp(a->prompts[i].text, b->prompts[i].text)) return 0;
        if (!a->prompts[i].task != !b->prompts[i].task) return 0;
        if (a->prompts[i].task && strcmp(a->prompts[i].task, b->prompts[i].task)) return 0;
        for (size_t m = 0; m < a->n_models; m++) {
            double x = *ipr_dataset_score(a, i, m), y = *ipr_dataset_score(b, i, m);
            double u = *ipr_dataset_cost(a, i, m), v = *ipr_dataset_cost(b, i, m);
            if (!(x == y || (isnan(x) && isnan(y)))) return 0;
            if (!(u == v || (isnan(u) && isnan(v)))) return 0;
        }
    }
    return 1;
}

static void test_build(void)
{
    struct ipr_dataset *ds = sample();
    CHECK_EQ_INT(ds->n, 3);
    CHECK_EQ_INT(ds->n_models, 3);
    CHECK_EQ_INT(ipr_dataset_model_index(ds, "b"), 1);
    CHECK_EQ_INT(ipr_dataset_model_index(ds, "zz"), -1);
    CHECK_NEAR(*ipr_dataset_score(ds, 0, 0), 1.0, 0);   /* kept across re-stride */
    CHECK(isnan(*ipr_dataset_score(ds, 1, 0)));
    CHECK(isnan(*ipr_dataset_cost(ds, 2, 2)));
    CHECK_EQ_INT(ipr_dataset_add(ds, "p2", "again", NULL), IPR_ERR_INVAL);
    CHECK(strstr(ipr_error_message(), "duplicate id") != NULL);
    CHECK(ipr_dataset_add(ds, "", "x", NULL) < 0);
    CHECK(ipr_dataset_add_model(ds, "") < 0);
    /* many rows: growth and the id index */
    char id[32];
    int wrong = 0;
    for (int i = 0; i < 5000; i++) { snprintf(id, sizeof id, "bulk.%d", i); wrong += ipr_dataset_add(ds, id, "x", NULL) != 3 + i; }
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(ipr_dataset_add(ds, "bulk.4321", "x", NULL), IPR_ERR_INVAL);
    CHECK_EQ_INT(ds->n, 5003);
    ipr_dataset_free(ds);
    ipr_dataset_free(NULL);
}

static void test_round_trip(void)
{
    struct ipr_dataset *ds = sample(), *back = NULL, *back2 = NULL;
    const char *p = tmp("rt.jsonl"), *p2 = tmp("rt2.jsonl");
    CHECK_EQ_INT(ipr_dataset_write(ds, p), IPR_OK);
    CHECK_EQ_INT(ipr_dataset_read(p, &back), IPR_OK);
    CHECK(back && same(ds, back));
    CHECK(back && ipr_dataset_checksum(ds) == ipr_dataset_checksum(back));
    CHECK_EQ_INT(ipr_dataset_write(back, p2), IPR_OK);
    size_t l1, l2;
    char *a = slurp(p, &l1), *b = slurp(p2, &l2);
    CHECK(a && b && l1 == l2 && memcmp(a, b, l1) == 0); /* byte-identical rewrite */
    free(a); free(b);
    /* gzip: written compressed, read back transparently, also via the plain name */
    const char *gz = tmp("rt3.jsonl.gz");
    CHECK_EQ_INT(ipr_dataset_write(ds, gz), IPR_OK);
    CHECK_EQ_INT(ipr_dataset_read(gz, &back2), IPR_OK);
    CHECK(back2 && same(ds, back2));
    ipr_dataset_free(back2); back2 = NULL;
    CHECK_EQ_INT(ipr_dataset_read(tmp("rt3.jsonl"), &back2), IPR_OK);
    CHECK(back2 && same(ds, back2));
    size_t gl;
    char *g = slurp(gz, &gl);
    CHECK(g && gl > 2 && (unsigned char)g[0] == 0x1f && (unsigned char)g[1] == 0x8b);
    free(g);
    /* the checksum sees content changes */
    uint64_t c0 = ipr_dataset_checksum(ds);
    *ipr_dataset_score(ds, 2, 0) = 0.5;
    CHECK(ipr_dataset_checksum(ds) != c0);
    ipr_dataset_free(ds); ipr_dataset_free(back); ipr_dataset_free(back2);
    CHECK_EQ_INT(ipr_dataset_read(tmp("no-such-file.jsonl"), &back), IPR_ERR_NOTFOUND);
    CHECK(back == NULL);
}

static void test_read_forms(void)
{
    /* CRLF, blank lines, null labels, unknown keys, no final newline */
    const char *txt = "{\"id\":\"a\",\"prompt\":\"x\",\"scores\":{\"m1\":1,\"m2\":null},\"extra\":[1,2]}\r\n\n"
                      "  \n{\"id\":\"b\",\"prompt\":\"y\",\"task\":null,\"scores\":{\"m2\":0.25},\"costs\":{\"m2\":0.5}}";
    struct ipr_dataset *ds = NULL;
    CHECK_EQ_INT(ipr_dataset_parse(txt, strlen(txt), "mem", &ds), IPR_OK);
    if (!ds) return;
    CHECK_EQ_INT(ds->n, 2);
    CHECK_EQ_INT(ds->n_models, 2);
    CHECK(isnan(*ipr_dataset_score(ds, 0, 1)));
    CHECK_NEAR(*ipr_dataset_score(ds, 1, 1), 0.25, 0);
    CHECK_NEAR(*ipr_dataset_cost(ds, 1, 1), 0.5, 0);
    CHECK(ds->prompts[1].task == NULL);
    ipr_dataset_free(ds);
}

/* Each bad input must fail with the given code and a message holding `want`. */
static void bad(const char *content, size_t len, int code, const char *want)
{
    const char *p = tmp("bad.jsonl");
    put(p, content, len);
    struct ipr_dataset *ds = (struct ipr_dataset *)1;
    int rc = ipr_dataset_read(p, &ds);
    CHECK_MSG(rc == code, "got %d (%s), want %d for %s", rc, ipr_error_message(), code, want);
    CHECK_MSG(strstr(ipr_error_message(), want) != NULL, "message \"%s\" lacks \"%s\"", ipr_error_message(), want);
    CHECK(ds == NULL);
}
#define BAD(s, code, want) bad(s, sizeof(s) - 1, code, want)

static void test_bad_input(void)
{
    char want[300];
    const char *p = tmp("bad.jsonl");
#define L1 "{\"id\":\"a\",\"prompt\":\"x\",\"scores\":{\"m\":1}}\n"
    snprintf(want, sizeof want, "%s:2: malformed JSON", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{\"m\":1}\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:2: missing field \"id\"", p);
    BAD(L1 "{\"prompt\":\"x\",\"scores\":{}}\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:2: missing field \"prompt\"", p);
    BAD(L1 "{\"id\":\"b\",\"scores\":{}}\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:3: missing field \"scores\"", p);
    BAD(L1 "\n{\"id\":\"b\",\"prompt\":\"x\"}\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:2: score 1.5 of \"m\" is outside [0,1]", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{\"m\":1.5}}\n", IPR_ERR_INVAL, want);
    snprintf(want, sizeof want, "%s:2: score -0.1 of \"m\"", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{\"m\":-0.1}}\n", IPR_ERR_INVAL, want);
    snprintf(want, sizeof want, "%s:3: duplicate id \"a\" (first on line 1)", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{}}\n{\"id\":\"a\",\"prompt\":\"y\",\"scores\":{}}\n", IPR_ERR_INVAL, want);
    snprintf(want, sizeof want, "%s:2: invalid UTF-8", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"caf\xc3\",\"scores\":{}}\n", IPR_ERR_FORMAT, want);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"\xed\xa0\x80\",\"scores\":{}}\n", IPR_ERR_FORMAT, want); /* surrogate */
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"\xc0\xaf\",\"scores\":{}}\n", IPR_ERR_FORMAT, want);     /* overlong */
    snprintf(want, sizeof want, "%s:1: empty file", p);
    BAD("", IPR_ERR_FORMAT, want);
    BAD("\n \n", IPR_ERR_FORMAT, "empty file");
    snprintf(want, sizeof want, "%s:2: file ends mid-line", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"sco", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:2: score of \"m\" must be a number", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{\"m\":\"1\"}}\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:2: cost -1 of \"m\"", p);
    BAD(L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{},\"costs\":{\"m\":-1}}\n", IPR_ERR_INVAL, want);
    snprintf(want, sizeof want, "%s:1: expected a JSON object", p);
    BAD("[1,2]\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:1: field \"id\" must be a string", p);
    BAD("{\"id\":7,\"prompt\":\"x\",\"scores\":{}}\n", IPR_ERR_FORMAT, want);
    snprintf(want, sizeof want, "%s:1: extra characters", p);
    BAD("{\"id\":\"a\",\"prompt\":\"x\",\"scores\":{}} x\n", IPR_ERR_FORMAT, want);
    BAD("{\"id\":\"a\",\"prompt\":\"x\",\"scores\":{\"m\":1,\"m\":0}}\n", IPR_ERR_FORMAT, "appears twice");
    BAD("{\"id\":\"a\",\"prompt\":\"x\",\"scores\":[1]}\n", IPR_ERR_FORMAT, "must be an object");
    /* a complete last line without a newline is fine */
    const char *ok = L1 "{\"id\":\"b\",\"prompt\":\"x\",\"scores\":{\"m\":0}}";
    put(p, ok, strlen(ok));
    struct ipr_dataset *ds = NULL;
    CHECK_EQ_INT(ipr_dataset_read(p, &ds), IPR_OK);
    CHECK(ds && ds->n == 2);
    ipr_dataset_free(ds);
    /* a corrupt gzip file */
    BAD("\x1f\x8b\x08\x00garbage", IPR_ERR_FORMAT, "gzip");
#undef L1
}

static void test_write_is_atomic(void)
{
    struct ipr_dataset *ds = sample();
    /* into a directory that does not exist: fails, leaves nothing */
    CHECK(ipr_dataset_write(ds, tmp("nodir/x.jsonl")) == IPR_ERR_IO);
    CHECK(strstr(ipr_error_message(), "nodir/x.jsonl") != NULL);
    /* over an existing file: replaced whole, no temporary left behind */
    const char *p = tmp("atomic.jsonl");
    put(p, "old", 3);
    CHECK_EQ_INT(ipr_dataset_write(ds, p), IPR_OK);
    size_t n;
    char *b = slurp(p, &n);
    CHECK(b && n > 3 && b[0] == '{');
    free(b);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", dir);
    CHECK(system(cmd) != 0); /* grep found no *.tmp.* file */
    ipr_dataset_free(ds);
}

static void test_split(void)
{
    size_t count[3] = { 0 };
    char id[32];
    int unstable = 0, unnested = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof id, "q.%d", i);
        int s = ipr_split_of(id, 0.1, 0.2);
        unstable += s != ipr_split_of(id, 0.1, 0.2); /* deterministic */
        count[s]++;
        /* nested: a test prompt at 20 % stays test at 30 % */
        unnested += s == 2 && ipr_split_of(id, 0.0, 0.3) != 2;
    }
    CHECK_EQ_INT(unstable, 0);
    CHECK_EQ_INT(unnested, 0);
    /* pinned values: a change of hash would silently reshuffle every split */
    CHECK_EQ_INT(ipr_split_of("mbpp.dev.1", 0.1, 0.1), 2);
    CHECK_EQ_INT(ipr_split_of("arc-challenge.val.172", 0.1, 0.1), 0);
    CHECK_NEAR((double)count[0] / 20000, 0.7, 0.015);
    CHECK_NEAR((double)count[1] / 20000, 0.1, 0.01);
    CHECK_NEAR((double)count[2] / 20000, 0.2, 0.015);
    CHECK_EQ_INT(ipr_split_of("x", 0, 0), 0);
    CHECK_EQ_INT(ipr_split_of("x", 0, 1), 2);
}

static void test_subset(void)
{
    struct ipr_dataset *ds = sample(), *sub = NULL;
    uint8_t keep[3] = { 0, 1, 1 };
    CHECK_EQ_INT(ipr_dataset_subset(ds, keep, &sub), IPR_OK);
    CHECK(sub && sub->n == 2 && sub->n_models == 3);
    if (sub) {
        CHECK_STR(sub->prompts[0].id, "p2");
        CHECK_NEAR(*ipr_dataset_score(sub, 0, 1), 1.0 / 3.0, 0);
        CHECK_NEAR(*ipr_dataset_cost(sub, 0, 1), 4e-05, 0);
        CHECK(isnan(*ipr_dataset_score(sub, 0, 0)));
    }
    ipr_dataset_free(sub);
    ipr_dataset_free(ds);
}

static void test_tokens(void)
{
    CHECK_EQ_INT(ipr_count_tokens("", 0), 0);
    CHECK_EQ_INT(ipr_count_tokens("abcd", 4), 1);
    CHECK_EQ_INT(ipr_count_tokens("abcde", 5), 2);
    const char *zh = "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97"; /* three CJK characters */
    CHECK_EQ_INT(ipr_count_tokens(zh, strlen(zh)), 3);
    CHECK_EQ_INT(ipr_count_tokens("caf\xc3\xa9", 5), 2); /* 3/4 + 1/2 -> 2 */
    CHECK_EQ_INT(ipr_count_tokens("\xff\xfe", 2), 1);    /* invalid bytes count as ASCII */
    CHECK_EQ_INT(ipr_count_tokens("\xe4\xb8", 2), 1);    /* truncated sequence */
    const char *en = "Write a python function to identify non-prime numbers.";
    size_t t = ipr_count_tokens(en, strlen(en));
    CHECK_EQ_INT(t, 14); /* 55 ASCII bytes / 4, rounded up */
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ipr_test_data.XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

TEST_MAIN(setup, test_build, test_round_trip, test_read_forms, test_bad_input, test_write_is_atomic,
          test_split, test_subset, test_tokens, teardown)
