/*
 * test_encoder.c — the GloVe encoder on a tiny vocabulary that the test
 * writes itself (wink-embeddings JSON, 4-d vectors): conversion, exact
 * vectors, SIF pooling against a hand computation, n-gram features for
 * words outside the vocabulary, determinism across runs and thread counts,
 * hostile prompts, bad encoder files (each a clear error), a converter that
 * fails leaving no file behind, and the embedding cache.
 */
#include "check.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/text.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], json[128], enc_path[128];

/* id == frequency index; the words list is deliberately in another order to
 * show that the index, not the order of "vectors", decides the id. */
static const char *FIXTURE =
    "{\"precision\":8,\"l2NormIndex\":4,\"wordIndex\":5,\"size\":9,\"dimensions\":4,\n"
    " \"words\":[\"the\",\",\",\".\",\"king\",\"queen\",\"carrot\",\"e-mail\",\"\\\"\",\"caf\\u00e9\"],\n"
    " \"vectors\":{\n"
    "  \"king\":[0.5,-0.25,1e-1,2.0,2.1,3],\n"
    "  \"the\":[-0.038194,-0.24487,0.72812,-0.39961,0.9,0],\n"
    "  \",\":[0.1,0.1,0.1,0.1,0.2,1],\n"
    "  \".\":[0.2,0.0,-0.2,0.0,0.28,2],\n"
    "  \"queen\":[0.45,-0.2,0.15,1.9,2.0,4],\n"
    "  \"carrot\":[-1.0,0.8,0.3,-0.5,1.4,5],\n"
    "  \"e-mail\":[0.0,1.0,0.0,0.0,1.0,6],\n"
    "  \"\\\"\":[0.0,0.0,1.0,0.0,1.0,7],\n"
    "  \"caf\\u00e9\":[0.3,0.3,0.3,0.3,0.6,8]\n"
    " },\n"
    " \"unkVector\":[0,0,0,0,0,-1]}\n";

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(data, 1, n, f);
    fclose(f);
    return k == n ? 0 : -1;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static size_t count_files(void)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ipr_test_encXXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(json, sizeof json, "%s/tiny.json", dir);
    snprintf(enc_path, sizeof enc_path, "%s/tiny.ipre", dir);
    CHECK_EQ_INT(write_file(json, FIXTURE, strlen(FIXTURE)), 0);
    CHECK_EQ_INT(ipr_encoder_convert(json, enc_path), IPR_OK);
}

static void test_open_and_vectors(void)
{
    struct ipr_encoder *e;
    CHECK_EQ_INT(ipr_encoder_open(enc_path, &e), IPR_OK);
    CHECK_EQ_INT(e->dim, 2 * 4 + 256 + 16);
    CHECK_STR(e->name, "glove-9w-4d+hash");
    CHECK(e->checksum != 0);
    struct ipr_encoder_info in;
    CHECK_EQ_INT(ipr_encoder_get_info(e, &in), IPR_OK);
    CHECK_EQ_INT(in.n_words, 9);
    CHECK_EQ_INT(in.word_dim, 4);
    CHECK_STR(in.kind, "glove-hash");
    const float *v;
    size_t d;
    CHECK_EQ_INT(ipr_encoder_word_vector(e, "the", &v, &d), IPR_OK);
    CHECK_EQ_INT(d, 4);
    CHECK(v[0] == -0.038194f && v[1] == -0.24487f && v[2] == 0.72812f && v[3] == -0.39961f);
    CHECK_EQ_INT(ipr_encoder_word_vector(e, "king", &v, &d), IPR_OK);
    CHECK(v[0] == 0.5f && v[1] == -0.25f && v[2] == 0.1f && v[3] == 2.0f);
    CHECK_EQ_INT(ipr_encoder_word_vector(e, "\"", &v, &d), IPR_OK);
    CHECK(v[2] == 1.0f);
    CHECK_EQ_INT(ipr_encoder_word_vector(e, "caf\xC3\xA9", &v, &d), IPR_OK); /* \u00e9 decoded */
    CHECK_EQ_INT(ipr_encoder_word_vector(e, "kubernetes", &v, &d), IPR_ERR_NOTFOUND);
    ipr_encoder_close(e);
}

static double sif(int id, int n, double a)
{
    double H = 0;
    for (int r = 1; r <= n; r++) H += 1.0 / r;
    double p = 1.0 / ((id + 1) * H);
    return a / (a + p);
}

static void test_embed_values(void)
{
    struct ipr_encoder *e;
    struct ipr_embed_ctx *c;
    CHECK_EQ_INT(ipr_encoder_open(enc_path, &e), IPR_OK);
    CHECK_EQ_INT(ipr_embed_ctx_new(e, &c), IPR_OK);
    float *x = calloc(e->dim, sizeof *x);
    const char *p = "The KING, kubernetes";
    CHECK_EQ_INT(ipr_encoder_embed(e, c, p, strlen(p), x), IPR_OK);
    /* whole block: SIF mean of the(0), king(3), ","(1), normalised */
    static const double vthe[4] = { -0.038194, -0.24487, 0.72812, -0.39961 };
    static const double vking[4] = { 0.5, -0.25, 0.1, 2.0 };
    double want[4], nn = 0;
    for (int i = 0; i < 4; i++) {
        want[i] = sif(0, 9, 1e-3) * vthe[i] + sif(3, 9, 1e-3) * vking[i] + sif(1, 9, 1e-3) * 0.1;
        nn += want[i] * want[i];
    }
    for (int i = 0; i < 4; i++) CHECK_NEAR(x[i], want[i] / sqrt(nn), 1e-5);
    /* the prompt is shorter than the tail: tail block == whole block */
    for (int i = 0; i < 4; i++) CHECK(x[4 + i] == x[i]);
    /* n-gram block has unit norm */
    double hn = 0;
    for (size_t i = 8; i < 8 + 256; i++) hn += (double)x[i] * x[i];
    CHECK_NEAR(hn, 1.0, 1e-5);
    /* a prompt of only unknown words: no word vector, but n-gram features */
    const char *oov = "kubernetes segfault pytorch";
    CHECK_EQ_INT(ipr_encoder_embed(e, c, oov, strlen(oov), x), IPR_OK);
    for (int i = 0; i < 8; i++) CHECK(x[i] == 0.0f);
    hn = 0;
    size_t nz = 0;
    for (size_t i = 8; i < 8 + 256; i++) { hn += (double)x[i] * x[i]; nz += x[i] != 0; }
    CHECK_NEAR(hn, 1.0, 1e-5);
    CHECK(nz > 20);
    /* different OOV words give different n-gram features */
    float *y = calloc(e->dim, sizeof *y);
    CHECK_EQ_INT(ipr_encoder_embed(e, c, "segfault", 8, y), IPR_OK);
    CHECK(memcmp(x + 8, y + 8, 256 * sizeof *x) != 0);
    /* statistics: the OOV share (index 11 of the stats block) is 1 */
    CHECK_NEAR(x[8 + 256 + 11], 1.0, 1e-6);
    /* code and math markers */
    const char *code = "```python\ndef f(x):\n    return {x; x}\n```";
    CHECK_EQ_INT(ipr_encoder_embed(e, c, code, strlen(code), y), IPR_OK);
    CHECK(y[8 + 256 + 4] > 0.3f);
    const char *opt = "Pick one:\nA) one\nB) two\nC) three?";
    CHECK_EQ_INT(ipr_encoder_embed(e, c, opt, strlen(opt), y), IPR_OK);
    CHECK_NEAR(y[8 + 256 + 9], log1p(3.0) / 3.0, 1e-6);
    CHECK(y[8 + 256 + 14] == 1.0f);
    free(x);
    free(y);
    ipr_embed_ctx_free(e, c);
    ipr_encoder_close(e);
}

static void test_determinism(void)
{
    struct ipr_encoder *e;
    CHECK_EQ_INT(ipr_encoder_open(enc_path, &e), IPR_OK);
    enum { N = 37 };
    char *texts[N];
    for (int i = 0; i < N; i++) {
        texts[i] = malloc(256);
        snprintf(texts[i], 256, "The king %d, e-mail the queen %d times; carrot%d caf\xC3\xA9?", i, i * 7, i % 3);
    }
    size_t dim = e->dim;
    float *a = malloc(N * dim * sizeof *a), *b = malloc(N * dim * sizeof *b), *s = malloc(N * dim * sizeof *s);
    CHECK_EQ_INT(ipr_encoder_embed_batch(e, (const char *const *)texts, NULL, N, 1, a, NULL, NULL), IPR_OK);
    CHECK_EQ_INT(ipr_encoder_embed_batch(e, (const char *const *)texts, NULL, N, 3, b, NULL, NULL), IPR_OK);
    CHECK(memcmp(a, b, N * dim * sizeof *a) == 0);
    struct ipr_embed_ctx *c;
    CHECK_EQ_INT(ipr_embed_ctx_new(e, &c), IPR_OK);
    for (int i = N - 1; i >= 0; i--) /* reverse order: no state leaks between prompts */
        CHECK_EQ_INT(ipr_encoder_embed(e, c, texts[i], strlen(texts[i]), s + (size_t)i * dim), IPR_OK);
    CHECK(memcmp(a, s, N * dim * sizeof *a) == 0);
    ipr_embed_ctx_free(e, c);
    for (int i = 0; i < N; i++) free(texts[i]);
    free(a);
    free(b);
    free(s);
    ipr_encoder_close(e);
}

static void test_hostile_prompts(void)
{
    struct ipr_encoder *e;
    struct ipr_embed_ctx *c;
    CHECK_EQ_INT(ipr_encoder_open(enc_path, &e), IPR_OK);
    CHECK_EQ_INT(ipr_embed_ctx_new(e, &c), IPR_OK);
    float *x = malloc(e->dim * sizeof *x);
    CHECK_EQ_INT(ipr_encoder_embed(e, c, "", 0, x), IPR_OK);
    for (size_t i = 0; i < e->dim; i++) CHECK(x[i] == 0.0f);
    CHECK_EQ_INT(ipr_encoder_embed(e, c, NULL, 0, x), IPR_OK);
    /* 1 MB */
    size_t big = 1 << 20;
    char *p = malloc(IPR_TEXT_MAX_BYTES + 1);
    for (size_t i = 0; i < big; i++) p[i] = "the king, kubernetes. "[i % 22];
    CHECK_EQ_INT(ipr_encoder_embed(e, c, p, big, x), IPR_OK);
    int finite = 1;
    for (size_t i = 0; i < e->dim; i++) finite &= isfinite(x[i]);
    CHECK(finite);
    /* binary garbage and invalid UTF-8 */
    uint32_t s = 99;
    for (size_t i = 0; i < 100000; i++) { s = s * 1103515245u + 12345u; p[i] = (char)(s >> 16); }
    CHECK_EQ_INT(ipr_encoder_embed(e, c, p, 100000, x), IPR_OK);
    finite = 1;
    for (size_t i = 0; i < e->dim; i++) finite &= isfinite(x[i]);
    CHECK(finite);
    CHECK(x[8 + 256 + 15] > 0.0f); /* repaired/control share */
    CHECK_EQ_INT(ipr_encoder_embed(e, c, "the \xFF\xFE king \xC3", 13, x), IPR_OK);
    /* above the documented cap: a clean limit error */
    memset(p, 'a', IPR_TEXT_MAX_BYTES + 1);
    CHECK_EQ_INT(ipr_encoder_embed(e, c, p, IPR_TEXT_MAX_BYTES + 1, x), IPR_ERR_LIMIT);
    /* a context belongs to the encoder that made it */
    struct ipr_encoder *e2;
    CHECK_EQ_INT(ipr_encoder_open(enc_path, &e2), IPR_OK);
    CHECK_EQ_INT(ipr_encoder_embed(e2, c, "king", 4, x), IPR_ERR_INVAL);
    ipr_encoder_close(e2);
    /* and the context still works afterwards */
    CHECK_EQ_INT(ipr_encoder_embed(e, c, "king", 4, x), IPR_OK);
    free(p);
    free(x);
    ipr_embed_ctx_free(e, c);
    ipr_encoder_close(e);
}

/* Writes a modified copy of the encoder file and tries to open it. */
static int open_modified(size_t keep, long patch_at, uint8_t patch, const char *want_in_msg)
{
    size_t n;
    uint8_t *b = read_all(enc_path, &n);
    char path[160];
    snprintf(path, sizeof path, "%s/bad.ipre", dir);
    if (patch_at >= 0) b[patch_at] ^= patch;
    write_file(path, b, keep < n ? keep : n);
    free(b);
    struct ipr_encoder *e = (struct ipr_encoder *)1;
    int rc = ipr_encoder_open(path, &e);
    CHECK(e == NULL);
    CHECK_MSG(strstr(ipr_error_message(), want_in_msg) != NULL, "message: %s", ipr_error_message());
    CHECK_MSG(strstr(ipr_error_message(), "bad.ipre") != NULL, "message: %s", ipr_error_message());
    unlink(path);
    return rc;
}

static void test_bad_files(void)
{
    size_t n;
    free(read_all(enc_path, &n));
    CHECK_EQ_INT(open_modified(n / 2, -1, 0, "truncated"), IPR_ERR_FORMAT);
    CHECK_EQ_INT(open_modified(100, -1, 0, "truncated"), IPR_ERR_FORMAT);
    CHECK_EQ_INT(open_modified(4, -1, 0, "truncated"), IPR_ERR_FORMAT);
    CHECK_EQ_INT(open_modified(0, -1, 0, "truncated"), IPR_ERR_FORMAT);
    CHECK_EQ_INT(open_modified(n, (long)n - 3, 0x40, "checksum"), IPR_ERR_CHECKSUM);
    CHECK_EQ_INT(open_modified(n, 8, 0x02, "version"), IPR_ERR_VERSION);
    CHECK_EQ_INT(open_modified(n, 0, 0x20, "magic"), IPR_ERR_FORMAT);
    CHECK_EQ_INT(open_modified(n, 40, 0x01, "inconsistent"), IPR_ERR_FORMAT); /* table_cap */
    CHECK_EQ_INT(open_modified(n, 36, 0x01, "checksum"), IPR_ERR_CHECKSUM);   /* n_words: header is covered */
    CHECK_EQ_INT(open_modified(n, 112, 0x01, "outside"), IPR_ERR_FORMAT);      /* off_vectors */
    struct ipr_encoder *e;
    char path[160];
    snprintf(path, sizeof path, "%s/missing.ipre", dir);
    CHECK_EQ_INT(ipr_encoder_open(path, &e), IPR_ERR_NOTFOUND);
    CHECK(strstr(ipr_error_message(), "ipr encoder fetch") != NULL);
}

static void test_convert_errors(void)
{
    static const char *bad[] = {
        "{\"dimensions\":4,\"vectors\":{\"a\":[1,2,3,4,5,0],\"b\":[1,2,3,4,5",          /* truncated */
        "{\"dimensions\":4,\"vectors\":{\"a\":[1,2,3,4,5,0],\"b\":[1,2,3,5,1]}}",        /* short vector */
        "{\"dimensions\":4,\"vectors\":{\"a\":[1,2,3,4,5,0],\"b\":[1,2,3,4,5,0]}}",      /* index twice */
        "{\"dimensions\":4,\"vectors\":{\"a\":[1,2,3,4,5,0],\"a\":[1,2,3,4,5,1]}}",      /* word twice */
        "{\"size\":3,\"vectors\":{\"a\":[1,2,3,4,5,0],\"b\":[1,2,3,4,5,1]}}",            /* size mismatch */
        "{\"dimensions\":4,\"vectors\":{\"a\":[1,2,x,4,5,0]}}",                         /* bad number */
        "{\"words\":[]}",                                                               /* no vectors */
        "[1,2,3]",
        "",
    };
    size_t before = count_files();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[160], out[160];
        snprintf(in, sizeof in, "%s/bad.json", dir);
        snprintf(out, sizeof out, "%s/bad-out.ipre", dir);
        write_file(in, bad[i], strlen(bad[i]));
        int rc = ipr_encoder_convert(in, out);
        CHECK_MSG(rc == IPR_ERR_FORMAT, "case %zu: rc %d (%s)", i, rc, ipr_error_message());
        CHECK_MSG(access(out, F_OK) != 0, "case %zu left %s", i, out);
        unlink(in);
    }
    CHECK_EQ_INT(count_files(), before); /* no temporary file left behind */
    char out[160];
    snprintf(out, sizeof out, "%s/x.ipre", dir);
    CHECK_EQ_INT(ipr_encoder_convert("/nonexistent/file.json", out), IPR_ERR_IO);
}

static void test_cache(void)
{
    const char *ids[3] = { "a", "bb", "" };
    float x[3 * 5];
    for (int i = 0; i < 15; i++) x[i] = (float)i * 0.5f - 3.0f;
    char path[160];
    snprintf(path, sizeof path, "%s/c.emb", dir);
    CHECK_EQ_INT(ipr_embed_cache_write(path, "glove-test", 0x1234, 0x5678, 3, 5, ids, x), IPR_OK);
    struct ipr_embed_cache *c;
    CHECK_EQ_INT(ipr_embed_cache_read(path, &c), IPR_OK);
    CHECK_EQ_INT(c->n, 3);
    CHECK_EQ_INT(c->dim, 5);
    CHECK_STR(c->encoder_name, "glove-test");
    CHECK(c->encoder_checksum == 0x1234 && c->data_checksum == 0x5678);
    CHECK_STR(c->ids[1], "bb");
    CHECK_STR(c->ids[2], "");
    CHECK(memcmp(c->x, x, sizeof x) == 0);
    ipr_embed_cache_free(c);
    size_t n;
    uint8_t *b = read_all(path, &n);
    char bad[170];
    snprintf(bad, sizeof bad, "%s/bad.emb", dir);
    write_file(bad, b, n - 4);
    CHECK_EQ_INT(ipr_embed_cache_read(bad, &c), IPR_ERR_FORMAT);
    CHECK(c == NULL);
    b[n - 1] ^= 1;
    write_file(bad, b, n);
    CHECK_EQ_INT(ipr_embed_cache_read(bad, &c), IPR_ERR_CHECKSUM);
    b[n - 1] ^= 1;
    b[8] = 7;
    write_file(bad, b, n);
    CHECK_EQ_INT(ipr_embed_cache_read(bad, &c), IPR_ERR_VERSION);
    free(b);
    unlink(bad);
    unlink(path);
    /* empty cache */
    CHECK_EQ_INT(ipr_embed_cache_write(path, "e", 1, 2, 0, 5, NULL, NULL), IPR_OK);
    CHECK_EQ_INT(ipr_embed_cache_read(path, &c), IPR_OK);
    CHECK_EQ_INT(c->n, 0);
    ipr_embed_cache_free(c);
    unlink(path);
}

static void test_default_path(void)
{
    char buf[256];
    const char *old = getenv("IPR_HOME");
    char *save = old ? strdup(old) : NULL;
    setenv("IPR_HOME", "/some/home", 1);
    CHECK_EQ_INT(ipr_encoder_default_path(buf, sizeof buf), IPR_OK);
    CHECK_STR(buf, "/some/home/encoder/glove6b-100d.ipre");
    CHECK_EQ_INT(ipr_encoder_default_path(buf, 8), IPR_ERR_LIMIT);
    if (save) setenv("IPR_HOME", save, 1); else unsetenv("IPR_HOME");
    free(save);
}

static void teardown(void)
{
    unlink(json);
    unlink(enc_path);
    CHECK_EQ_INT(rmdir(dir), 0);
}

TEST_MAIN(setup, test_open_and_vectors, test_embed_values, test_determinism, test_hostile_prompts,
          test_bad_files, test_convert_errors, test_cache, test_default_path, teardown)
