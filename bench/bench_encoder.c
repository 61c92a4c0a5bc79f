/*
 * bench_encoder.c — encoder figures: single-prompt latency (p50/p99) for
 * 50-, 500- and 5,000-word prompts, single-core batch throughput on the
 * shipped prompts (data/routerbench/ JSONL files, or any given), and the
 * resident memory of the process with the encoder loaded.
 *
 *   build/bench/bench_encoder [--encoder FILE] [DATA.jsonl ...]  (default: data/routerbench/ JSONL files)
 *
 * Synthetic prompts draw words from the vocabulary with a Zipf-like rank
 * distribution (fixed seed) plus punctuation, so lookups hit and miss the
 * cache as real text does. Figures are printed, not asserted.
 */
#include "ipr/data.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/text.h"

#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *WORDS[] = {
    "the", "of", "and", "to", "in", "is", "for", "that", "on", "with", "as", "by", "question",
    "model", "function", "return", "which", "following", "answer", "water", "energy", "python",
    "list", "number", "write", "given", "string", "value", "students", "experiment", "temperature",
    "kubernetes", "segfault", "pytorch", "photosynthesis", "molecule", "integer", "array", "sorted",
    "because", "however", "science", "plants", "animals", "sun", "earth", "rock", "layers",
    "describe", "explain", "compute", "probability", "triangle", "circle", "area", "force",
};

static char *synth(size_t words, uint32_t seed)
{
    size_t nw = sizeof WORDS / sizeof WORDS[0];
    char *p = malloc(words * 16 + 1);
    size_t w = 0;
    uint32_t s = seed;
    for (size_t i = 0; i < words; i++) {
        s = s * 1664525u + 1013904223u;
        double u = (s >> 8) / 16777216.0;
        size_t k = (size_t)(exp(u * log((double)nw))) - 1;
        if (k >= nw) k = nw - 1;
        w += (size_t)sprintf(p + w, "%s%s", i ? " " : "", WORDS[k]);
        if (s % 13 == 0) p[w++] = ',';
        if (s % 17 == 0) p[w++] = '.';
    }
    p[w] = '\0';
    return p;
}

int main(int argc, char **argv)
{
    char path[4096];
    int argi = 1;
    if (argc > 2 && strcmp(argv[1], "--encoder") == 0) {
        snprintf(path, sizeof path, "%s", argv[2]);
        argi = 3;
    } else if (ipr_encoder_default_path(path, sizeof path)) {
        fprintf(stderr, "bench_encoder: %s\n", ipr_error_message());
        return 1;
    }
    long rss0 = rss_kb();
    double t0 = now();
    struct ipr_encoder *enc;
    if (ipr_encoder_open(path, &enc)) {
        fprintf(stderr, "bench_encoder: %s\n", ipr_error_message());
        return 1;
    }
    printf("encoder %s (%s), dim %zu, open %.1f ms, RSS %ld -> %ld kB\n", path, enc->name, enc->dim,
           (now() - t0) * 1e3, rss0, rss_kb());
    struct ipr_embed_ctx *ctx;
    if (ipr_embed_ctx_new(enc, &ctx)) return 1;
    float *x = malloc(enc->dim * sizeof *x);

    static const size_t sizes[] = { 50, 500, 5000 };
    for (size_t si = 0; si < 3; si++) {
        enum { NP = 64 };
        char *pr[NP];
        for (int i = 0; i < NP; i++) pr[i] = synth(sizes[si], 1234u + (uint32_t)i * 7919u);
        int iters = sizes[si] <= 50 ? 20000 : sizes[si] <= 500 ? 4000 : 400;
        double *lat = malloc((size_t)iters * sizeof *lat);
        for (int i = 0; i < 200; i++) ipr_encoder_embed(enc, ctx, pr[i % NP], strlen(pr[i % NP]), x);
        for (int i = 0; i < iters; i++) {
            const char *p = pr[i % NP];
            size_t n = strlen(p);
            double a = now();
            ipr_encoder_embed(enc, ctx, p, n, x);
            lat[i] = (now() - a) * 1e6;
        }
        qsort(lat, (size_t)iters, sizeof *lat, cmp_d);
        printf("latency %5zu words: p50 %8.2f us  p99 %8.2f us  (%d runs, %zu bytes)\n", sizes[si],
               lat[iters / 2], lat[(size_t)(iters * 0.99)], iters, strlen(pr[0]));
        free(lat);
        for (int i = 0; i < NP; i++) free(pr[i]);
    }

    glob_t g;
    memset(&g, 0, sizeof g);
    if (argi < argc) {
        for (int i = argi; i < argc; i++) glob(argv[i], i > argi ? GLOB_APPEND : 0, NULL, &g);
    } else {
        glob("data/routerbench/*.jsonl*", 0, NULL, &g);
    }
    /* every prompt of every file, then the same after the prompt view
     * (learned on them) has dropped the shared few-shot boilerplate */
    size_t np = 0, cap = 0;
    char **pr = NULL;
    for (size_t f = 0; f < g.gl_pathc; f++) {
        struct ipr_dataset *ds;
        if (ipr_dataset_read(g.gl_pathv[f], &ds)) {
            fprintf(stderr, "bench_encoder: %s\n", ipr_error_message());
            continue;
        }
        for (size_t i = 0; i < ds->n; i++) {
            if (np == cap) { cap = cap ? 2 * cap : 1024; pr = realloc(pr, cap * sizeof *pr); }
            pr[np++] = strdup(ds->prompts[i].text);
        }
        ipr_dataset_free(ds);
    }
    size_t *len = malloc((np + 1) * sizeof *len);
    for (size_t i = 0; i < np; i++) len[i] = strlen(pr[i]);
    for (int pass = 0; pass < 2 && np; pass++) {
        char **use = pr;
        size_t *ul = len;
        if (pass == 1) {
            struct ipr_view *v;
            if (ipr_view_learn((const char *const *)pr, len, np, &v)) break;
            use = malloc(np * sizeof *use);
            ul = malloc(np * sizeof *ul);
            for (size_t i = 0; i < np; i++) {
                use[i] = malloc(len[i] + 1);
                ul[i] = ipr_view_apply(v, pr[i], len[i], use[i], len[i] + 1);
            }
            printf("view: %zu boilerplate segments learned\n", ipr_view_size(v));
            ipr_view_free(v);
        }
        size_t bytes = 0;
        for (size_t i = 0; i < np; i++) bytes += ul[i];
        double w0 = now(), c0 = cpu_now();
        int reps = 3;
        for (int rep = 0; rep < reps; rep++)
            for (size_t i = 0; i < np; i++) ipr_encoder_embed(enc, ctx, use[i], ul[i], x);
        double wall = now() - w0, cpu = cpu_now() - c0;
        printf("throughput%s: %zu prompts x %d (mean %.0f bytes): %.0f prompts/s per core (CPU time %.3f s; wall %.3f s)\n",
               pass ? " after the view" : "", np, reps, (double)bytes / np, reps * np / cpu, cpu, wall);
        if (pass == 1) {
            for (size_t i = 0; i < np; i++) free(use[i]);
            free(use);
            free(ul);
        }
    }
    if (!np) printf("throughput: no data files found (pass DATA.jsonl)\n");
    for (size_t i = 0; i < np; i++) free(pr[i]);
    free(pr);
    free(len);
    globfree(&g);
    printf("RSS with the encoder loaded and used: %ld kB\n", rss_kb());
    free(x);
    ipr_embed_ctx_free(enc, ctx);
    ipr_encoder_close(enc);
    return 0;
}
