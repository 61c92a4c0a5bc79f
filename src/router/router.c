/*
 * router.c — a loaded router: bundle + encoder -> predictions -> decision.
 *
 * The estimator's input is the encoder's embedding of the prompt, of the prompt
 * with its learned boilerplate removed (the bundle's VIEW), or both side by
 * side (bundle.h, enum ipr_input_mode). The per-thread context holds every
 * buffer the path needs; the view buffer grows to the longest prompt seen, so
 * steady-state routing allocates nothing.
 */
#include "ipr/router.h"
#include "ipr/bundle.h"
#include "ipr/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ipr_router {
    struct ipr_bundle *b;
    struct ipr_encoder *enc;
    size_t in_dim;       /* QE input size */
    int fallback;        /* registry index of the fallback model, -1 if none */
};

struct ipr_router_ctx {
    struct ipr_embed_ctx *ec;
    const struct ipr_encoder *enc;
    float *x;            /* (in_dim) */
    float *scratch;      /* (ipr_qe_scratch_floats) */
    char *view;          /* (view_cap) */
    size_t view_cap;
};

int ipr_router_open(const char *bundle_path, const char *encoder_path, struct ipr_router **out)
{
    char defpath[4096];
    *out = NULL;
    struct ipr_router *r = calloc(1, sizeof *r);
    if (!r)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    int rc = ipr_bundle_read(bundle_path, &r->b);
    if (rc != IPR_OK)
        goto fail;
    if (!encoder_path) {
        if ((rc = ipr_encoder_default_path(defpath, sizeof defpath)) != IPR_OK)
            goto fail;
        encoder_path = defpath;
    }
    if ((rc = ipr_encoder_open(encoder_path, &r->enc)) != IPR_OK) {
        ipr_error_wrap(rc, "router %s needs encoder %s (run 'ipr encoder fetch')", bundle_path, r->b->meta.encoder_name);
        goto fail;
    }
    const struct ipr_bundle_meta *m = &r->b->meta;
    if (strcmp(r->enc->name, m->encoder_name) != 0 || r->enc->checksum != m->encoder_checksum ||
        r->enc->dim != m->encoder_dim) {
        rc = ipr_error_set(IPR_ERR_CHECKSUM,
                           "%s was trained with encoder %s (checksum %016llx, dim %zu) but %s is %s (checksum %016llx, dim %zu)",
                           bundle_path, m->encoder_name, (unsigned long long)m->encoder_checksum, m->encoder_dim,
                           encoder_path, r->enc->name, (unsigned long long)r->enc->checksum, r->enc->dim);
        goto fail;
    }
    r->in_dim = ipr_qe_dim(r->b->qe[0]);
    r->fallback = r->b->reg->fallback ? ipr_registry_find(r->b->reg, r->b->reg->fallback) : -1;
    *out = r;
    return IPR_OK;
fail:
    ipr_router_close(r);
    return rc;
}

void ipr_router_close(struct ipr_router *r)
{
    if (!r)
        return;
    ipr_bundle_free(r->b);
    ipr_encoder_close(r->enc);
    free(r);
}

const struct ipr_registry *ipr_router_registry(const struct ipr_router *r) { return r->b->reg; }
const struct ipr_encoder *ipr_router_encoder(const struct ipr_router *r) { return r->enc; }
enum ipr_rule ipr_router_default_rule(const struct ipr_router *r) { return r->b->meta.default_rule; }
double ipr_router_default_tau(const struct ipr_router *r) { return r->b->meta.default_tau; }
const struct ipr_bundle *ipr_router_bundle(const struct ipr_router *r) { return r->b; }

int ipr_router_ctx_new(const struct ipr_router *r, struct ipr_router_ctx **out)
{
    *out = NULL;
    struct ipr_router_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    c->enc = r->enc;
    c->x = calloc(r->in_dim, sizeof *c->x);
    c->scratch = calloc(ipr_bundle_scratch_floats(r->b) + 1, sizeof *c->scratch);
    int rc = (c->x && c->scratch) ? ipr_embed_ctx_new(r->enc, &c->ec)
                                  : ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    if (rc != IPR_OK) {
        ipr_router_ctx_free(c);
        return rc;
    }
    *out = c;
    return IPR_OK;
}

void ipr_router_ctx_free(struct ipr_router_ctx *c)
{
    if (!c)
        return;
    if (c->ec)
        ipr_embed_ctx_free(c->enc, c->ec);
    free(c->x);
    free(c->scratch);
    free(c->view);
    free(c);
}

int ipr_features(const struct ipr_encoder *enc, const struct ipr_view *view, enum ipr_input_mode mode,
                 struct ipr_embed_ctx *ec, char **vbuf, size_t *vcap,
                 const char *text, size_t len, float *x)
{
    int rc;
    if (mode != IPR_INPUT_VIEW && (rc = ipr_encoder_embed(enc, ec, text, len, x)) != IPR_OK)
        return rc;
    if (mode == IPR_INPUT_FULL)
        return IPR_OK;
    if (*vcap < len + 1) {
        size_t cap = len + 1 > 2 * *vcap ? len + 1 : 2 * *vcap;
        char *nb = realloc(*vbuf, cap);
        if (!nb)
            return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        *vbuf = nb;
        *vcap = cap;
    }
    size_t vlen = ipr_view_apply(view, text, len, *vbuf, *vcap);
    return ipr_encoder_embed(enc, ec, *vbuf, vlen, mode == IPR_INPUT_VIEW ? x : x + enc->dim);
}

int ipr_router_predict(const struct ipr_router *r, struct ipr_router_ctx *c,
                       const char *text, size_t len, double *pred)
{
    int rc = ipr_features(r->enc, r->b->view, r->b->meta.input, c->ec, &c->view, &c->view_cap, text, len, c->x);
    if (rc != IPR_OK)
        return rc;
    ipr_bundle_predict(r->b, c->x, c->scratch, pred);
    return IPR_OK;
}

int ipr_router_predict_batch(const struct ipr_router *r, const char *const *texts, size_t n, int threads,
                             double *P)
{
    float *X = malloc((n * r->in_dim + 1) * sizeof *X);
    float *scratch = malloc((ipr_bundle_scratch_floats(r->b) + 1) * sizeof *scratch);
    int rc = X && scratch ? IPR_OK : ipr_error_set(IPR_ERR_NOMEM, "out of memory for %zu prompts", n);
    if (rc == IPR_OK)
        rc = ipr_features_batch(r->enc, r->b->view, r->b->meta.input, texts, n, threads, X, NULL, NULL);
    for (size_t i = 0; rc == IPR_OK && i < n; i++)
        ipr_bundle_predict(r->b, X + i * r->in_dim, scratch, P + i * r->b->reg->n);
    free(X);
    free(scratch);
    return rc;
}

void ipr_router_expected_costs(const struct ipr_router *r, const char *text, size_t len, double *cost)
{
    size_t tokens = ipr_count_tokens(text, len);
    for (size_t m = 0; m < r->b->reg->n; m++)
        cost[m] = ipr_registry_expected_cost(r->b->reg, m, tokens);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* Marks the allowed candidates; unknown names are a client error. */
static int filter(const struct ipr_registry *reg, const struct ipr_route_request *q, uint8_t *allowed)
{
    for (size_t m = 0; m < reg->n; m++)
        allowed[m] = 1;
    if (q->models) {
        memset(allowed, 0, reg->n);
        for (size_t i = 0; i < q->n_models; i++) {
            int k = q->models[i] ? ipr_registry_find(reg, q->models[i]) : -1;
            if (k < 0)
                return ipr_error_set(IPR_ERR_NOTFOUND, "unknown model '%s'", q->models[i] ? q->models[i] : "(null)");
            allowed[k] = 1;
        }
    }
    if (q->family) {
        int known = 0;
        for (size_t m = 0; m < reg->n; m++) {
            int same = reg->models[m].family && strcmp(reg->models[m].family, q->family) == 0;
            known |= same;
            if (!same)
                allowed[m] = 0;
        }
        if (!known)
            return ipr_error_set(IPR_ERR_NOTFOUND, "unknown model family '%s'", q->family);
    }
    for (size_t m = 0; m < reg->n; m++)
        if (allowed[m])
            return IPR_OK;
    return ipr_error_set(IPR_ERR_INVAL, "no candidate model left after filtering by models and family");
}

/* The model used when prediction fails: the registry's fallback if allowed,
 * else the most expensive allowed candidate (the likeliest strong one). */
static int fallback_model(const struct ipr_router *r, const struct ipr_route_result *res)
{
    if (r->fallback >= 0 && res->allowed[r->fallback])
        return r->fallback;
    int best = -1;
    for (size_t m = 0; m < res->n; m++)
        if (res->allowed[m] && (best < 0 || res->cost[m] > res->cost[best]))
            best = (int)m;
    return best;
}

int ipr_router_route(const struct ipr_router *r, struct ipr_router_ctx *c,
                     const struct ipr_route_request *q, struct ipr_route_result *res)
{
    double t0 = now_us();
    const struct ipr_registry *reg = r->b->reg;
    memset(res, 0, sizeof *res);
    res->n = reg->n;
    res->d.model = -1;
    if (!(q->tau >= 0.0 && q->tau <= 1.0))
        return ipr_error_set(IPR_ERR_INVAL, "tau must be a number in [0,1]");
    if (!(q->delta >= 0.0) || !isfinite(q->delta))
        return ipr_error_set(IPR_ERR_INVAL, "delta must be a finite number >= 0");
    if (q->rule < -1 || q->rule >= IPR_RULE_COUNT)
        return ipr_error_set(IPR_ERR_INVAL, "unknown rule %d", q->rule);
    res->rule = q->rule < 0 ? r->b->meta.default_rule : (enum ipr_rule)q->rule;
    int rc = filter(reg, q, res->allowed);
    if (rc != IPR_OK)
        return rc;
    ipr_router_expected_costs(r, q->text, q->len, res->cost);

    rc = ipr_router_predict(r, c, q->text, q->len, res->pred);
    if (rc != IPR_OK) {
        for (size_t m = 0; m < res->n; m++)
            res->pred[m] = NAN;
        snprintf(res->reason, sizeof res->reason, "quality estimator failed: %.120s", ipr_error_message());
    } else {
        rc = ipr_rule_apply(res->rule, q->tau, q->delta, res->pred, res->cost, res->allowed, res->n,
                            res->passed, &res->d);
        if (rc == IPR_ERR_PREDICT)
            snprintf(res->reason, sizeof res->reason, "quality estimator returned a non-finite value");
        else if (rc != IPR_OK)
            return rc;
    }
    if (rc != IPR_OK) {
        memset(res->passed, 0, sizeof res->passed);
        res->d.model = fallback_model(r, res);
        res->d.fallback_used = 1;
        res->d.threshold = NAN;
        res->d.best_pred = NAN;
        res->d.n_passed = 0;
        res->d.expected_cost = res->cost[res->d.model];
    }
    res->latency_us = now_us() - t0;
    return IPR_OK;
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

char *ipr_route_result_json(const struct ipr_router *r, const struct ipr_route_request *q,
                            const struct ipr_route_result *res, int explain)
{
    const struct ipr_registry *reg = r->b->reg;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "model", res->d.model >= 0 ? reg->models[res->d.model].name : "");
    cJSON_AddNumberToObject(o, "tau", q->tau);
    cJSON_AddStringToObject(o, "rule", ipr_rule_name(res->rule));
    cJSON *pred = cJSON_AddObjectToObject(o, "predicted");
    for (size_t m = 0; m < res->n; m++)
        if (res->allowed[m])
            cJSON_AddItemToObject(pred, reg->models[m].name, num_or_null(res->pred[m]));
    cJSON_AddItemToObject(o, "threshold", num_or_null(res->d.threshold));
    cJSON_AddNumberToObject(o, "expected_cost", res->d.expected_cost);
    cJSON_AddBoolToObject(o, "fallback_used", res->d.fallback_used);
    if (explain) {
        cJSON *ex = cJSON_AddObjectToObject(o, "explanation");
        char text[512];
        if (res->d.fallback_used)
            snprintf(text, sizeof text, "fallback to %s: %s", reg->models[res->d.model].name, res->reason);
        else
            snprintf(text, sizeof text,
                     "%s rule at tau=%g: best predicted quality %.4f, threshold %.4f; %d of the allowed candidates "
                     "passed; %s is the cheapest of them (expected $%.6g)",
                     ipr_rule_name(res->rule), q->tau, res->d.best_pred, res->d.threshold, res->d.n_passed,
                     reg->models[res->d.model].name, res->d.expected_cost);
        cJSON_AddStringToObject(ex, "text", text);
        cJSON_AddStringToObject(ex, "reason", res->reason);
        if (q->rule < 0 || res->rule == IPR_RULE_DYNMAX)
            cJSON_AddNumberToObject(ex, "delta", q->delta);
        cJSON *cands = cJSON_AddArrayToObject(ex, "candidates");
        for (size_t m = 0; m < res->n; m++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "model", reg->models[m].name);
            if (reg->models[m].family)
                cJSON_AddStringToObject(e, "family", reg->models[m].family);
            cJSON_AddItemToObject(e, "predicted", num_or_null(res->pred[m]));
            cJSON_AddNumberToObject(e, "expected_cost", res->cost[m]);
            cJSON_AddBoolToObject(e, "allowed", res->allowed[m]);
            cJSON_AddBoolToObject(e, "passed", res->passed[m]);
            cJSON_AddBoolToObject(e, "chosen", (int)m == res->d.model);
            cJSON_AddItemToArray(cands, e);
        }
        cJSON_AddNumberToObject(ex, "latency_us", res->latency_us);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
