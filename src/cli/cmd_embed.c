/*
 * cmd_embed.c — `ipr embed`: embeds every prompt of a dataset on all cores
 * into an embedding cache (ipr_embed_cache_write) that training can load.
 *
 *   ipr embed [--encoder E] --data D.jsonl -o CACHE [--threads N]
 *             [--view-data TRAIN.jsonl]
 *
 * --view-data learns the prompt view (boilerplate filter) from that
 * dataset's prompts and embeds D's prompts through it. The output is the
 * same for any --threads (static partition, one context per thread).
 */
#include "cli/cli.h"
#include "ipr/data.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_progress(void *ud, size_t done) { cli_progress_update(ud, done); }

static int learn_view(const char *path, struct ipr_view **out)
{
    struct ipr_dataset *vd;
    int rc = ipr_dataset_read(path, &vd);
    if (rc) return rc;
    const char **t = malloc((vd->n + 1) * sizeof *t);
    size_t *l = malloc((vd->n + 1) * sizeof *l);
    if (!t || !l) rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < vd->n; i++) {
        t[i] = vd->prompts[i].text;
        l[i] = strlen(t[i]);
    }
    if (!rc) rc = ipr_view_learn(t, l, vd->n, out);
    free(t);
    free(l);
    ipr_dataset_free(vd);
    return rc;
}

int cmd_embed(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "encoder", 1, NULL, 0, {0}, 0 }, { "data", 1, NULL, 0, {0}, 0 }, { "o", 1, NULL, 0, {0}, 0 },
        { "output", 1, NULL, 0, {0}, 0 }, { "threads", 1, NULL, 0, {0}, 0 }, { "view-data", 1, NULL, 0, {0}, 0 },
    };
    const size_t no = sizeof o / sizeof o[0];
    char *args[64];
    const char *pos[4];
    int np;
    if (argc > 64) return cli_fail("embed", ipr_error_set(IPR_ERR_INVAL, "too many arguments"));
    for (int i = 0; i < argc; i++) args[i] = strcmp(argv[i], "-o") == 0 ? "--o" : argv[i]; /* short -o */
    if (cli_parse(argc, args, o, no, pos, 4, &np)) return 2;
    const char *data = cli_get(o, no, "data"), *out = cli_get(o, no, "o");
    if (!out) out = cli_get(o, no, "output");
    if (np || !data || !out) {
        fprintf(stderr, "usage: ipr embed [--encoder E] --data D.jsonl -o CACHE [--threads N] [--view-data TRAIN.jsonl]\n");
        return 2;
    }
    long threads = 0;
    const char *ts = cli_get(o, no, "threads");
    if (ts && (cli_long(ts, &threads) || threads < 0 || threads > 256))
        return cli_fail("embed", ipr_error_set(IPR_ERR_INVAL, "--threads must be 0..256"));
    char dflt[4096];
    const char *ep = cli_get(o, no, "encoder");
    int rc;
    if (!ep) {
        if ((rc = ipr_encoder_default_path(dflt, sizeof dflt))) return cli_fail("embed", rc);
        ep = dflt;
    }
    struct ipr_encoder *enc = NULL;
    struct ipr_dataset *ds = NULL;
    struct ipr_view *view = NULL;
    const char **texts = NULL, **ids = NULL;
    size_t *lens = NULL;
    char *viewed = NULL;
    float *x = NULL;
    if ((rc = ipr_encoder_open(ep, &enc)) || (rc = ipr_dataset_read(data, &ds))) goto done;
    const char *vp = cli_get(o, no, "view-data");
    if (vp && (rc = learn_view(vp, &view))) goto done;
    if (view) fprintf(stderr, "ipr embed: prompt view learned from %s: %zu boilerplate segments\n", vp, ipr_view_size(view));
    size_t n = ds->n, total = 0;
    texts = malloc((n + 1) * sizeof *texts);
    ids = malloc((n + 1) * sizeof *ids);
    lens = malloc((n + 1) * sizeof *lens);
    x = malloc((n * enc->dim + 1) * sizeof *x);
    if (!texts || !ids || !lens || !x) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto done; }
    for (size_t i = 0; i < n; i++) {
        texts[i] = ds->prompts[i].text;
        ids[i] = ds->prompts[i].id;
        lens[i] = strlen(texts[i]);
        total += lens[i];
    }
    if (view) {
        viewed = malloc(total + 1);
        if (!viewed) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto done; }
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            size_t w = ipr_view_apply(view, texts[i], lens[i], viewed + off, lens[i]);
            texts[i] = viewed + off;
            lens[i] = w;
            off += w;
        }
    }
    struct cli_progress pg;
    cli_progress_start(&pg, "embed", n);
    double t0 = cli_now();
    rc = ipr_encoder_embed_batch(enc, texts, lens, n, (int)threads, x, on_progress, &pg);
    cli_progress_end(&pg);
    if (rc) goto done;
    double secs = cli_now() - t0;
    rc = ipr_embed_cache_write(out, enc->name, enc->checksum, ipr_dataset_checksum(ds), n, enc->dim, ids, x);
    if (rc) goto done;
    fprintf(stderr, "ipr embed: %zu prompts x %zu dims in %.2f s (%.0f prompts/s)%s -> %s\n", n, enc->dim, secs,
            secs > 0 ? (double)n / secs : 0.0, view ? " through the prompt view" : "", out);
done:
    free(texts);
    free(ids);
    free(lens);
    free(viewed);
    free(x);
    ipr_view_free(view);
    ipr_dataset_free(ds);
    ipr_encoder_close(enc);
    return rc ? cli_fail("embed", rc) : 0;
}
