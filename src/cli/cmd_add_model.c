/*
 * cmd_add_model.c — `ipr add-model`: adds a candidate to an existing router by
 * training only its adapter, on the bundle's frozen encoder, view and trunk.
 * Every other part of the bundle (META, VIEW, the QE's existing parts) is
 * written back byte for byte; the registry gains one entry.
 */
#include "cli/cli.h"
#include "cli/train_common.h"
#include "ipr/bundle.h"
#include "ipr/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: ipr add-model --router ROUTER.ipr --model NAME --data LABELS.jsonl -o NEW.ipr\n"
    "                     [--registry R.json | --price-in P --price-out P --mean-out-tokens N]\n"
    "                     [--family F] [--encoder FILE] [--val-frac F] [--seed N] [--threads N]\n"
    "LABELS.jsonl holds the new model's labels in its \"scores\" (other models' labels are ignored).\n";

static void progress_cb(void *arg, size_t done) { cli_progress_update(arg, done); }

/* The new model's registry entry, from a registry file or from flags. */
static int model_entry(struct cli_opt *o, size_t no, const char *name, struct ipr_model_info *mi,
                       struct ipr_registry **src)
{
    const char *rp = cli_get(o, no, "registry"), *s;
    int rc;
    memset(mi, 0, sizeof *mi);
    if (rp) {
        if ((rc = ipr_registry_read(rp, src)) != IPR_OK)
            return rc;
        int k = ipr_registry_find(*src, name);
        if (k < 0)
            return ipr_error_set(IPR_ERR_NOTFOUND, "%s: no model '%s'", rp, name);
        *mi = (*src)->models[k];
    } else {
        const char *keys[3] = { "price-in", "price-out", "mean-out-tokens" };
        double *vals[3] = { &mi->price_in, &mi->price_out, &mi->mean_out_tokens };
        for (int i = 0; i < 3; i++) {
            if (!(s = cli_get(o, no, keys[i])))
                return ipr_error_set(IPR_ERR_INVAL, "give --registry or --%s", keys[i]);
            if (cli_double(s, vals[i]) || *vals[i] < 0)
                return ipr_error_set(IPR_ERR_INVAL, "--%s: bad value '%s'", keys[i], s);
        }
        mi->name = (char *)name;
    }
    if ((s = cli_get(o, no, "family")))
        mi->family = (char *)s;
    return IPR_OK;
}

/* Appends a deep copy of mi to reg. */
static int registry_push(struct ipr_registry *reg, const struct ipr_model_info *mi)
{
    struct ipr_model_info *nm = realloc(reg->models, (reg->n + 1) * sizeof *nm);
    if (!nm)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    reg->models = nm;
    struct ipr_model_info *d = &nm[reg->n];
    *d = *mi;
    d->name = strdup(mi->name);
    d->family = mi->family ? strdup(mi->family) : NULL;
    d->upstream.base_url = mi->upstream.base_url ? strdup(mi->upstream.base_url) : NULL;
    d->upstream.api_key_env = mi->upstream.api_key_env ? strdup(mi->upstream.api_key_env) : NULL;
    d->upstream.model = mi->upstream.model ? strdup(mi->upstream.model) : NULL;
    reg->n++;
    return d->name ? IPR_OK : ipr_error_set(IPR_ERR_NOMEM, "out of memory");
}

int cmd_add_model(int argc, char **argv)
{
    struct cli_opt o[] = {
        { "router", 1, NULL, 0, { 0 }, 0 }, { "model", 1, NULL, 0, { 0 }, 0 }, { "data", 1, NULL, 0, { 0 }, 0 },
        { "o", 1, NULL, 0, { 0 }, 0 }, { "output", 1, NULL, 0, { 0 }, 0 }, { "registry", 1, NULL, 0, { 0 }, 0 },
        { "price-in", 1, NULL, 0, { 0 }, 0 }, { "price-out", 1, NULL, 0, { 0 }, 0 },
        { "mean-out-tokens", 1, NULL, 0, { 0 }, 0 }, { "family", 1, NULL, 0, { 0 }, 0 },
        { "encoder", 1, NULL, 0, { 0 }, 0 }, { "val-frac", 1, NULL, 0, { 0 }, 0 }, { "seed", 1, NULL, 0, { 0 }, 0 },
        { "threads", 1, NULL, 0, { 0 }, 0 }, { "quiet", 0, NULL, 0, { 0 }, 0 },
    };
    const size_t no = sizeof o / sizeof o[0];
    const char *pos[2], *s;
    int npos, rc, ret = 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = "--o";
    int started = cli_start(argc, argv, o, no, pos, 2, &npos, usage);
    if (started >= 0)
        return started;
    const char *rpath = cli_get(o, no, "router"), *name = cli_get(o, no, "model"), *dpath = cli_get(o, no, "data");
    const char *outp = cli_get(o, no, "o") ? cli_get(o, no, "o") : cli_get(o, no, "output");
    if (npos || !rpath || !name || !dpath || !outp) {
        fputs(usage, stderr);
        return 2;
    }
    double t0 = cli_now(), val_frac = 0.1;
    struct ipr_qe_config cfg;
    ipr_qe_config_default(&cfg);
    cfg.verbose = 0;
    long l;
    if ((s = cli_get(o, no, "val-frac")) && (cli_double(s, &val_frac) || val_frac <= 0 || val_frac >= 1))
        return cli_fail("add-model", ipr_error_set(IPR_ERR_INVAL, "--val-frac must be in (0,1)"));
    if ((s = cli_get(o, no, "seed"))) {
        if (cli_long(s, &l) || l < 0)
            return cli_fail("add-model", ipr_error_set(IPR_ERR_INVAL, "--seed: bad value"));
        cfg.seed = (uint64_t)l;
    }
    if ((s = cli_get(o, no, "threads"))) {
        if (cli_long(s, &l) || l < 0 || l > 64)
            return cli_fail("add-model", ipr_error_set(IPR_ERR_INVAL, "--threads: bad value"));
        cfg.threads = (int)l;
    }

    struct ipr_bundle *b = NULL;
    struct ipr_registry *src = NULL, one = { 0 };
    struct ipr_dataset *ds = NULL;
    struct ipr_encoder *enc = NULL;
    struct ipr_model_info mi;
    struct table t = { 0 };
    float *X = NULL;
    char encpath[4096];
    if ((rc = ipr_bundle_read(rpath, &b)) != IPR_OK)
        goto fail;
    if (ipr_registry_find(b->reg, name) >= 0) {
        rc = ipr_error_set(IPR_ERR_INVAL, "%s already has a model '%s'", rpath, name);
        goto fail;
    }
    if (b->reg->n >= IPR_MAX_MODELS) {
        rc = ipr_error_set(IPR_ERR_LIMIT, "%s already holds %d models", rpath, IPR_MAX_MODELS);
        goto fail;
    }
    if ((rc = model_entry(o, no, name, &mi, &src)) != IPR_OK || (rc = ipr_dataset_read(dpath, &ds)) != IPR_OK)
        goto fail;
    if (ipr_dataset_model_index(ds, name) < 0) {
        rc = ipr_error_set(IPR_ERR_NOTFOUND, "%s has no labels for '%s'", dpath, name);
        goto fail;
    }
    if (!(s = cli_get(o, no, "encoder"))) {
        if ((rc = ipr_encoder_default_path(encpath, sizeof encpath)) != IPR_OK)
            goto fail;
        s = encpath;
    }
    if ((rc = ipr_encoder_open(s, &enc)) != IPR_OK)
        goto fail;
    if (strcmp(enc->name, b->meta.encoder_name) != 0 || enc->checksum != b->meta.encoder_checksum) {
        rc = ipr_error_set(IPR_ERR_CHECKSUM, "%s was trained with encoder %s (%016llx), %s is %s (%016llx)", rpath,
                           b->meta.encoder_name, (unsigned long long)b->meta.encoder_checksum, s, enc->name,
                           (unsigned long long)enc->checksum);
        goto fail;
    }
    /* A one-model registry selects the new model's column. */
    one.n = 1;
    one.models = &mi;
    mi.name = (char *)name;
    if ((rc = table_build(&ds, 1, 0, &one, 0, &t)) != IPR_OK)
        goto fail;
    /* Only labelled prompts are embedded. */
    size_t w = 0;
    for (size_t i = 0; i < t.n; i++)
        if (!isnan(t.y[i])) {
            t.ids[w] = t.ids[i], t.texts[w] = t.texts[i], t.y[w] = t.y[i], t.c[w] = t.c[i];
            w++;
        }
    t.n = w;
    table_split(&t, val_frac);
    size_t d = ipr_qe_dim(b->qe[0]);
    if (!(X = malloc((t.n * d + 1) * sizeof *X))) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    struct cli_progress pg;
    cli_progress_start(&pg, "embed", t.n);
    if (cli_flag(o, no, "quiet"))
        pg.enabled = 0;
    rc = ipr_features_batch(enc, b->view, b->meta.input, t.texts, t.n, cfg.threads, X, progress_cb, &pg);
    cli_progress_end(&pg);
    if (rc != IPR_OK)
        goto fail;
    double t_embed = cli_now() - t0;
    size_t ntr;
    if ((rc = table_partition(&t, X, d, &ntr)) != IPR_OK)
        goto fail;
    size_t nva = t.n - ntr;
    struct ipr_qe_data dtr = { ntr, d, 1, X, t.y }, dva = { nva, d, 1, X + ntr * d, t.y + ntr };
    struct ipr_qe_report rep = { 0 };
    /* Each of the bundle's estimators gets its own adapter, seeds as at training. */
    double secs = 0;
    for (size_t k = 0; k < b->n_qe; k++) {
        struct ipr_qe_config ck = cfg;
        struct ipr_qe_report rk;
        ck.seed = cfg.seed + k;
        if ((rc = ipr_qe_add_adapter(b->qe[k], &ck, &dtr, nva ? &dva : NULL, &rk)) != IPR_OK)
            goto fail;
        secs += rk.seconds;
        if (k == 0)
            rep = rk;
    }
    rep.seconds = secs;
    if ((rc = registry_push(b->reg, &mi)) != IPR_OK || (rc = ipr_bundle_write(b, outp)) != IPR_OK)
        goto fail;
    printf("{\"router\": \"%s\", \"added\": \"%s\", \"n_train\": %zu, \"n_val\": %zu, \"val_mae\": %.6f, "
           "\"embed_seconds\": %.3f, \"train_seconds\": %.3f, \"total_seconds\": %.3f}\n",
           outp, name, ntr, nva, rep.val_mae, t_embed, rep.seconds, cli_now() - t0);
    ret = 0;
    goto out;
fail:
    ret = cli_fail("add-model", rc);
out:
    ipr_bundle_free(b);
    ipr_registry_free(src);
    ipr_dataset_free(ds);
    ipr_encoder_close(enc);
    table_free(&t);
    free(X);
    return ret;
}
