/*
 * bundle.h — the router bundle file (DESIGN.md §1): everything a router needs
 * except the encoder's weights, in one versioned, checksummed binary file.
 *
 * Layout (little-endian; every section starts on a 64-byte boundary):
 *
 *   offset  size  field
 *   0       8     magic "IPRBNDL\0"
 *   8       4     version (IPR_BUNDLE_VERSION)
 *   12      4     n_sections (<= IPR_BUNDLE_MAX_SECTIONS)
 *   16      8     file_size: the total file size in bytes
 *   24      8     toc_checksum: XXH3-64 of the table of contents
 *   32      32    reserved, zero
 *   64      32*n  table of contents, one entry per section:
 *                   tag[8] (NUL-padded ASCII), offset u64, length u64,
 *                   checksum u64 (XXH3-64 of the section's bytes)
 *   ...           sections
 *
 * Sections: "META" (JSON: encoder identity, input layout, default rule, tau
 * and delta, training data checksum, date, validation metrics), "REGISTRY"
 * (the registry JSON of data.h), "QE", "QE1", ... (ipr_qe_save blobs of the
 * estimators whose predictions the router averages), "VIEW"
 * (ipr_view_save blob, the learned boilerplate filter). Unknown sections are
 * ignored, so newer writers can add some without breaking older readers.
 *
 * The reader maps the file read-only, checks the magic, version, file size,
 * TOC checksum, every offset and length against the file size, and every
 * section's checksum before parsing it. The writer writes to a temporary file
 * beside the target, fsyncs it and renames it over the target.
 *
 * Every QE's model i is the registry's model i.
 */
#ifndef IPR_BUNDLE_H
#define IPR_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "ipr/data.h"
#include "ipr/qe.h"
#include "ipr/router.h"
#include "ipr/text.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IPR_BUNDLE_VERSION 1
#define IPR_BUNDLE_MAX_SECTIONS 16

/* What the estimator sees of a prompt: the whole text, the text with the
 * learned boilerplate removed, or both embeddings side by side. */
enum ipr_input_mode {
    IPR_INPUT_FULL = 0,
    IPR_INPUT_VIEW = 1,
    IPR_INPUT_FULL_VIEW = 2,
};

struct ipr_bundle_meta {
    char encoder_name[64];
    uint64_t encoder_checksum;
    size_t encoder_dim;
    enum ipr_input_mode input;
    enum ipr_rule default_rule;
    double default_tau;
    double delta;
    uint64_t data_checksum;   /* of the training data */
    size_t n_train, n_val;
    char created[32];         /* ISO 8601 UTC */
    char *metrics_json;       /* validation metrics, a JSON object (owned) */
};

/* Estimators averaged by the router (trained with different seeds). */
#define IPR_BUNDLE_MAX_QE 8

struct ipr_bundle {
    struct ipr_bundle_meta meta;
    struct ipr_registry *reg; /* owned */
    struct ipr_qe *qe[IPR_BUNDLE_MAX_QE]; /* owned; the router averages their predictions */
    size_t n_qe;              /* >= 1 */
    struct ipr_view *view;    /* owned, may be NULL when input == FULL */
};

int  ipr_bundle_read(const char *path, struct ipr_bundle **out);
int  ipr_bundle_write(const struct ipr_bundle *b, const char *path);
void ipr_bundle_free(struct ipr_bundle *b);

const char *ipr_input_mode_name(enum ipr_input_mode m);
int ipr_input_mode_parse(const char *s, enum ipr_input_mode *out);

/* Averaged predictions of the bundle's estimators for one input x: out gets
 * registry-size values; scratch holds ipr_bundle_scratch_floats() floats. */
void ipr_bundle_predict(const struct ipr_bundle *b, const float *x, float *scratch, double *out);
size_t ipr_bundle_scratch_floats(const struct ipr_bundle *b);

/* The bundle behind a router (read-only). */
const struct ipr_bundle *ipr_router_bundle(const struct ipr_router *r);

/* The estimator's input for one prompt under an input mode: x receives
 * enc->dim floats (FULL, VIEW) or 2 * enc->dim (FULL_VIEW). The pair vbuf, vcap is a
 * caller-owned buffer for the view text, grown as needed. */
int ipr_features(const struct ipr_encoder *enc, const struct ipr_view *view, enum ipr_input_mode mode,
                 struct ipr_embed_ctx *ec, char **vbuf, size_t *vcap,
                 const char *text, size_t len, float *x);

/* The same for n prompts on `threads` threads (0 = all cores); row i of X
 * (n, in_dim) is bit-identical to ipr_features on prompt i. progress, if not
 * NULL, is called now and then from one thread with the rows done so far. */
int ipr_features_batch(const struct ipr_encoder *enc, const struct ipr_view *view, enum ipr_input_mode mode,
                       const char *const *texts, size_t n, int threads, float *X,
                       void (*progress)(void *arg, size_t done), void *arg);

#ifdef __cplusplus
}
#endif
#endif
