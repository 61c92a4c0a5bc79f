/*
 * router.h — the tau routing rule and the router (DESIGN.md §3).
 *
 * Two layers:
 *  - ipr_rule_apply(): the pure decision rule on a vector of predicted
 *    qualities and expected costs. Evaluation runs every baseline (oracle,
 *    random, k-NN) through this same function, so they differ from the router
 *    only in their predictions.
 *  - struct ipr_router: a loaded router bundle (registry, quality estimator,
 *    encoder identity, calibration) plus the encoder it was trained on. It turns
 *    a prompt into predictions and a decision with its explanation.
 *
 * Rules, with r = predictions over the allowed candidates:
 *   RANGE       threshold = max r - tau * (max r - min r)        (IPR)
 *   DYNMAX      threshold = (1 - tau) * max r - delta            (deployed variant)
 *   DIFFERENCE  threshold = max r - tau                          (quality units)
 * The choice is the lowest expected cost among {m : r[m] >= threshold}; ties in
 * cost go to the higher prediction, then to the lower index.
 */
#ifndef IPR_ROUTER_H
#define IPR_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "ipr/data.h"
#include "ipr/encoder.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Upper bound on candidates in one router; lets decisions live on the stack. */
#ifndef IPR_MAX_MODELS
#define IPR_MAX_MODELS 64
#endif

enum ipr_rule {
    IPR_RULE_RANGE = 0,
    IPR_RULE_DYNMAX = 1,
    IPR_RULE_DIFFERENCE = 2,
};
#define IPR_RULE_COUNT 3

const char *ipr_rule_name(enum ipr_rule rule);               /* "range", "dynmax", "difference" */
int ipr_rule_parse(const char *name, enum ipr_rule *out);     /* IPR_ERR_INVAL if unknown */

struct ipr_decision {
    int model;            /* chosen candidate index, -1 if none */
    double threshold;
    double expected_cost; /* of the chosen model */
    double best_pred;     /* max prediction among allowed */
    int n_passed;         /* candidates at or above the threshold */
    int fallback_used;    /* 1 when the registry's fallback was used */
};

/* Applies rule to pred/cost (n entries) restricted to allowed (NULL = all).
 * passed (n, may be NULL) receives 1 for the candidates at or above the
 * threshold. Errors: IPR_ERR_INVAL for tau outside [0,1], a negative delta, or
 * no allowed candidate; IPR_ERR_PREDICT when an allowed prediction is not
 * finite (the caller falls back). */
int ipr_rule_apply(enum ipr_rule rule, double tau, double delta,
                   const double *pred, const double *cost, const uint8_t *allowed,
                   size_t n, uint8_t *passed, struct ipr_decision *d);

/* --- the router --- */

struct ipr_router;
struct ipr_router_ctx; /* per-thread scratch: embedding and activations */

struct ipr_route_request {
    const char *text;          /* the prompt (UTF-8; repaired if invalid) */
    size_t len;
    double tau;                /* [0,1] */
    int rule;                  /* an enum ipr_rule, or -1 for the router's default */
    double delta;              /* DYNMAX margin, >= 0 */
    const char *const *models; /* allowed model names, NULL = all */
    size_t n_models;
    const char *family;        /* allowed family, NULL = all */
};

struct ipr_route_result {
    struct ipr_decision d;
    enum ipr_rule rule;                  /* the rule applied */
    size_t n;                            /* candidates (= registry size) */
    double pred[IPR_MAX_MODELS];         /* predicted quality, NaN if not run */
    double cost[IPR_MAX_MODELS];         /* expected cost, USD */
    uint8_t allowed[IPR_MAX_MODELS];
    uint8_t passed[IPR_MAX_MODELS];
    char reason[160];                    /* why the fallback was used, or "" */
    double latency_us;                   /* time spent in ipr_router_route */
};

/* Opens a router bundle and the encoder it names. encoder_path NULL means the
 * default encoder location; the encoder's name and checksum must match the
 * bundle's record (IPR_ERR_CHECKSUM otherwise). */
int  ipr_router_open(const char *bundle_path, const char *encoder_path, struct ipr_router **out);
void ipr_router_close(struct ipr_router *r);

const struct ipr_registry *ipr_router_registry(const struct ipr_router *r);
const struct ipr_encoder *ipr_router_encoder(const struct ipr_router *r);
enum ipr_rule ipr_router_default_rule(const struct ipr_router *r);
double ipr_router_default_tau(const struct ipr_router *r);

int  ipr_router_ctx_new(const struct ipr_router *r, struct ipr_router_ctx **out);
void ipr_router_ctx_free(struct ipr_router_ctx *ctx);

/* Predicted quality of every registry model for one prompt (pred: n doubles). */
int ipr_router_predict(const struct ipr_router *r, struct ipr_router_ctx *ctx,
                       const char *text, size_t len, double *pred);

/* Predictions for n prompts on `threads` threads (0 = all cores): P is
 * (n, registry size), row i identical to ipr_router_predict on texts[i]. */
int ipr_router_predict_batch(const struct ipr_router *r, const char *const *texts, size_t n, int threads,
                             double *P);

/* Expected cost of every registry model for one prompt (cost: n doubles). */
void ipr_router_expected_costs(const struct ipr_router *r, const char *text, size_t len, double *cost);

/* Routes one request. Returns IPR_OK with a decision (possibly the fallback,
 * with res->d.fallback_used and res->reason set), or an error for a bad
 * request: IPR_ERR_INVAL (tau), IPR_ERR_NOTFOUND (unknown model or family),
 * IPR_ERR_INVAL (no candidate left after filtering). Allocates nothing. */
int ipr_router_route(const struct ipr_router *r, struct ipr_router_ctx *ctx,
                     const struct ipr_route_request *req, struct ipr_route_result *res);

/* The decision as a JSON object (DESIGN.md §6): {"model", "tau", "rule",
 * "predicted", "threshold", "expected_cost", "fallback_used"} plus, when
 * explain, {"explanation": {"candidates": [{model, predicted, expected_cost,
 * passed, allowed}], "reason", "text"}}. Returns a malloc'd string or NULL. */
char *ipr_route_result_json(const struct ipr_router *r, const struct ipr_route_request *req,
                            const struct ipr_route_result *res, int explain);

#ifdef __cplusplus
}
#endif
#endif
