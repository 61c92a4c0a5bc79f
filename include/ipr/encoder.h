/*
 * encoder.h — the frozen prompt encoder interface.
 *
 * An encoder maps a prompt (UTF-8 bytes, repaired if invalid) to a fixed-size
 * float vector. It is pretrained and never trained by ipr. Implementations
 * plug in through a small table of functions, so the quality estimators and the
 * router never depend on which encoder is behind it: the default is built from
 * GloVe 6B 100-d word vectors plus hashed character n-grams and prompt
 * statistics (src/encoder/glove.c); a transformer encoder can be added later as
 * another ops table.
 *
 * Threading: an encoder is immutable after open and may be shared by threads.
 * Each thread embeds through its own struct ipr_embed_ctx (scratch memory that
 * grows to the longest prompt seen, so steady-state embedding allocates
 * nothing). The same text gives bit-identical output on every run and thread.
 */
#ifndef IPR_ENCODER_H
#define IPR_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ipr_encoder;
struct ipr_embed_ctx;

struct ipr_encoder_ops {
    const char *kind;  /* "glove-hash", "bert", ... */
    int  (*ctx_new)(const struct ipr_encoder *enc, struct ipr_embed_ctx **out);
    void (*ctx_free)(struct ipr_embed_ctx *ctx);
    /* Writes dim floats to out. Fails only on NOMEM or a limit. */
    int  (*embed)(const struct ipr_encoder *enc, struct ipr_embed_ctx *ctx,
                  const char *text, size_t len, float *out);
    void (*close)(struct ipr_encoder *enc);
};

struct ipr_encoder {
    const struct ipr_encoder_ops *ops;
    size_t dim;          /* output dimension */
    char name[64];       /* identity recorded in router bundles, e.g. "glove6b-100d+hash" */
    uint64_t checksum;   /* identity of the weights (from the file), recorded in bundles */
    void *impl;          /* implementation state */
};

/* Opens an encoder file, choosing the implementation by the file's magic.
 * Validates every length and offset against the file size. */
int  ipr_encoder_open(const char *path, struct ipr_encoder **out);
void ipr_encoder_close(struct ipr_encoder *enc);

int  ipr_embed_ctx_new(const struct ipr_encoder *enc, struct ipr_embed_ctx **out);
void ipr_embed_ctx_free(const struct ipr_encoder *enc, struct ipr_embed_ctx *ctx);
int  ipr_encoder_embed(const struct ipr_encoder *enc, struct ipr_embed_ctx *ctx,
                       const char *text, size_t len, float *out /* (dim) */);

/* Default location of the encoder file: $IPR_HOME/encoder/glove6b-100d.ipre,
 * IPR_HOME defaulting to ~/.cache/ipr. Writes into buf (cap bytes). */
int  ipr_encoder_default_path(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
