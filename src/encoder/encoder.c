/*
 * encoder.c — the encoder interface (include/ipr/encoder.h): opening a file
 * by its magic, per-thread contexts, batch embedding on all cores, and the
 * default encoder location.
 */
#include "encoder/glove_impl.h"
#include "ipr/encoder.h"
#include "ipr/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ipr_encoder_open(const char *path, struct ipr_encoder **out)
{
    *out = NULL;
    char magic[8] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ipr_error_set(errno == ENOENT ? IPR_ERR_NOTFOUND : IPR_ERR_IO, "%s: cannot open encoder file: %s%s",
                             path, strerror(errno), errno == ENOENT ? " (run `ipr encoder fetch`)" : "");
    ssize_t k = read(fd, magic, sizeof magic);
    close(fd);
    if (k != (ssize_t)sizeof magic)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: truncated encoder file (%zd bytes)", path, k < 0 ? (ssize_t)0 : k);
    if (memcmp(magic, GLOVE_MAGIC, 8) != 0)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: not an ipr encoder file (unknown magic)", path);
    struct glove *g;
    int rc = glove_open_file(path, &g);
    if (rc) return rc;
    struct ipr_encoder *e = calloc(1, sizeof *e);
    if (!e) {
        glove_close_file(g);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    e->ops = &glove_ops;
    e->dim = g->h->out_dim;
    snprintf(e->name, sizeof e->name, "%s", g->h->name);
    e->checksum = g->h->checksum;
    e->impl = g;
    *out = e;
    return IPR_OK;
}

void ipr_encoder_close(struct ipr_encoder *enc)
{
    if (enc) enc->ops->close(enc);
}

int ipr_embed_ctx_new(const struct ipr_encoder *enc, struct ipr_embed_ctx **out)
{
    return enc->ops->ctx_new(enc, out);
}

void ipr_embed_ctx_free(const struct ipr_encoder *enc, struct ipr_embed_ctx *ctx)
{
    if (enc && ctx) enc->ops->ctx_free(ctx);
}

int ipr_encoder_embed(const struct ipr_encoder *enc, struct ipr_embed_ctx *ctx,
                      const char *text, size_t len, float *out)
{
    return enc->ops->embed(enc, ctx, text, len, out);
}

int ipr_encoder_default_path(char *buf, size_t cap)
{
    const char *home = getenv("IPR_HOME");
    int n;
    if (home && *home) {
        n = snprintf(buf, cap, "%s/encoder/glove6b-100d.ipre", home);
    } else {
        const char *h = getenv("HOME");
        if (!h || !*h) return ipr_error_set(IPR_ERR_NOTFOUND, "neither IPR_HOME nor HOME is set");
        n = snprintf(buf, cap, "%s/.cache/ipr/encoder/glove6b-100d.ipre", h);
    }
    if (n < 0 || (size_t)n >= cap) return ipr_error_set(IPR_ERR_LIMIT, "encoder path too long");
    return IPR_OK;
}

int ipr_encoder_convert(const char *json_path, const char *out_path)
{
    FILE *f = strcmp(json_path, "-") == 0 ? stdin : fopen(json_path, "rb");
    if (!f) return ipr_error_set(IPR_ERR_IO, "%s: cannot open: %s", json_path, strerror(errno));
    int rc = glove_convert_stream(f, json_path, out_path, "");
    if (f != stdin) fclose(f);
    return rc;
}

int ipr_encoder_get_info(const struct ipr_encoder *enc, struct ipr_encoder_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->kind, sizeof info->kind, "%s", enc->ops->kind);
    if (enc->ops != &glove_ops) return IPR_OK;
    const struct glove *g = enc->impl;
    const struct glove_hdr *h = g->h;
    info->version = h->version;
    info->file_size = h->file_size;
    info->word_dim = h->word_dim;
    info->n_words = h->n_words;
    info->n_hash = h->n_hash;
    info->ngram_min = h->ngram_min;
    info->ngram_max = h->ngram_max;
    info->n_stats = h->n_stats;
    info->tail_tokens = h->tail_tokens;
    info->sif_a = h->sif_a;
    snprintf(info->source, sizeof info->source, "%s", h->source);
    return IPR_OK;
}

int ipr_encoder_word_vector(const struct ipr_encoder *enc, const char *word,
                            const float **vec, size_t *dim)
{
    if (enc->ops != &glove_ops)
        return ipr_error_set(IPR_ERR_NOTFOUND, "encoder %s has no word vectors", enc->ops->kind);
    const struct glove *g = enc->impl;
    int32_t id = glove_lookup(g, word, strlen(word));
    if (id < 0) return ipr_error_set(IPR_ERR_NOTFOUND, "\"%s\" is not in the vocabulary", word);
    *vec = g->vectors + (size_t)id * g->h->word_dim;
    *dim = g->h->word_dim;
    return IPR_OK;
}

/* ---- batch ---- */

struct batch_job {
    const struct ipr_encoder *enc;
    const char *const *texts;
    const size_t *lens;
    size_t lo, hi;
    float *out;
    size_t done;          /* written by the worker, read racily for progress */
    int rc;
    char err[256];
    int finished;         /* set last by the worker */
};

static void *batch_worker(void *arg)
{
    struct batch_job *j = arg;
    struct ipr_embed_ctx *ctx;
    j->rc = ipr_embed_ctx_new(j->enc, &ctx);
    if (j->rc) {
        snprintf(j->err, sizeof j->err, "%s", ipr_error_message());
        __atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    for (size_t i = j->lo; i < j->hi; i++) {
        const char *t = j->texts[i];
        size_t n = j->lens ? j->lens[i] : (t ? strlen(t) : 0);
        int rc = ipr_encoder_embed(j->enc, ctx, t, n, j->out + i * j->enc->dim);
        if (rc) {
            j->rc = rc;
            snprintf(j->err, sizeof j->err, "prompt %zu: %s", i, ipr_error_message());
            break;
        }
        __atomic_store_n(&j->done, i + 1 - j->lo, __ATOMIC_RELAXED);
    }
    ipr_embed_ctx_free(j->enc, ctx);
    __atomic_store_n(&j->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

int ipr_encoder_embed_batch(const struct ipr_encoder *enc, const char *const *texts,
                            const size_t *lens, size_t n, int n_threads, float *out,
                            void (*progress)(void *ud, size_t done), void *ud)
{
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 256) n_threads = 256;
    if ((size_t)n_threads > n) n_threads = n ? (int)n : 1;
    struct batch_job *jobs = calloc((size_t)n_threads, sizeof *jobs);
    pthread_t *th = calloc((size_t)n_threads, sizeof *th);
    if (!jobs || !th) {
        free(jobs);
        free(th);
        return ipr_error_set(IPR_ERR_NOMEM, "embed: out of memory");
    }
    int started = 0, rc = IPR_OK;
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (struct batch_job){ enc, texts, lens, n * (size_t)t / (size_t)n_threads,
                                      n * (size_t)(t + 1) / (size_t)n_threads, out, 0, 0, {0}, 0 };
        if (pthread_create(&th[t], NULL, batch_worker, &jobs[t]) != 0) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "embed: cannot start a thread");
            break;
        }
        started = t + 1;
    }
    /* the calling thread only watches, so progress flows while all cores work */
    while (progress && rc == IPR_OK) {
        size_t done = 0;
        int finished = 1;
        for (int t = 0; t < started; t++) {
            done += __atomic_load_n(&jobs[t].done, __ATOMIC_RELAXED);
            if (!__atomic_load_n(&jobs[t].finished, __ATOMIC_ACQUIRE)) finished = 0;
        }
        progress(ud, done);
        if (finished) break;
        usleep(50000);
    }
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < n_threads && rc == IPR_OK; t++)
        if (jobs[t].rc) rc = ipr_error_set(jobs[t].rc, "embed: %s", jobs[t].err);
    free(jobs);
    free(th);
    return rc;
}
