/*
 * pending.c — TEMPORARY weak stand-ins for the encoder, QE and view functions
 * while those modules land, so the tree links for everyone meanwhile. Each
 * fails with a clear error. Removed once the real modules are in.
 */
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/qe.h"
#include "ipr/text.h"

#include <string.h>

#define PENDING(what) ipr_error_set(IPR_ERR_NOTFOUND, "%s is not built yet", what)
#define W __attribute__((weak))

W int ipr_encoder_open(const char *p, struct ipr_encoder **o) { (void)p; *o = NULL; return PENDING("encoder"); }
W void ipr_encoder_close(struct ipr_encoder *e) { (void)e; }
W int ipr_embed_ctx_new(const struct ipr_encoder *e, struct ipr_embed_ctx **o) { (void)e; *o = NULL; return PENDING("encoder"); }
W void ipr_embed_ctx_free(const struct ipr_encoder *e, struct ipr_embed_ctx *c) { (void)e; (void)c; }
W int ipr_encoder_embed(const struct ipr_encoder *e, struct ipr_embed_ctx *c, const char *t, size_t l, float *o)
{ (void)e; (void)c; (void)t; (void)l; (void)o; return PENDING("encoder"); }
W int ipr_encoder_default_path(char *b, size_t c) { (void)b; (void)c; return PENDING("encoder"); }
W void ipr_qe_config_default(struct ipr_qe_config *c) { memset(c, 0, sizeof *c); }
W int ipr_qe_train(const struct ipr_qe_config *c, const struct ipr_qe_data *t, const struct ipr_qe_data *v,
                   struct ipr_qe **o, struct ipr_qe_report *r) { (void)c; (void)t; (void)v; (void)r; *o = NULL; return PENDING("qe"); }
W int ipr_qe_add_adapter(struct ipr_qe *q, const struct ipr_qe_config *c, const struct ipr_qe_data *t,
                         const struct ipr_qe_data *v, struct ipr_qe_report *r) { (void)q; (void)c; (void)t; (void)v; (void)r; return PENDING("qe"); }
W size_t ipr_qe_n_models(const struct ipr_qe *q) { (void)q; return 0; }
W size_t ipr_qe_dim(const struct ipr_qe *q) { (void)q; return 0; }
W size_t ipr_qe_scratch_floats(const struct ipr_qe *q) { (void)q; return 0; }
W void ipr_qe_predict(const struct ipr_qe *q, const float *x, float *s, double *o) { (void)q; (void)x; (void)s; (void)o; }
W int ipr_qe_save(const struct ipr_qe *q, uint8_t **b, size_t *l) { (void)q; *b = NULL; *l = 0; return PENDING("qe"); }
W int ipr_qe_load(const uint8_t *b, size_t l, struct ipr_qe **o) { (void)b; (void)l; *o = NULL; return PENDING("qe"); }
W void ipr_qe_free(struct ipr_qe *q) { (void)q; }
W int ipr_view_learn(const char *const *t, const size_t *l, size_t n, struct ipr_view **o) { (void)t; (void)l; (void)n; *o = NULL; return PENDING("view"); }
W size_t ipr_view_apply(const struct ipr_view *v, const char *t, size_t l, char *o, size_t c) { (void)v; (void)t; (void)l; (void)o; (void)c; return 0; }
W int ipr_view_save(const struct ipr_view *v, uint8_t **b, size_t *l) { (void)v; *b = NULL; *l = 0; return PENDING("view"); }
W int ipr_view_load(const uint8_t *b, size_t l, struct ipr_view **o) { (void)b; (void)l; *o = NULL; return PENDING("view"); }
W void ipr_view_free(struct ipr_view *v) { (void)v; }
