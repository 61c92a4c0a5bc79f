/*
 * rule.c — the tau decision rule (DESIGN.md §3), shared by the router and by
 * every evaluation baseline.
 */
#include "ipr/router.h"
#include "ipr/err.h"

#include <math.h>
#include <string.h>

static const char *const rule_names[IPR_RULE_COUNT] = { "range", "dynmax", "difference" };

const char *ipr_rule_name(enum ipr_rule rule)
{
    if ((unsigned)rule >= IPR_RULE_COUNT)
        return "unknown";
    return rule_names[rule];
}

int ipr_rule_parse(const char *name, enum ipr_rule *out)
{
    for (int i = 0; i < IPR_RULE_COUNT; i++)
        if (strcmp(name, rule_names[i]) == 0) {
            *out = (enum ipr_rule)i;
            return IPR_OK;
        }
    return ipr_error_set(IPR_ERR_INVAL, "unknown rule '%s' (expected range, dynmax or difference)", name);
}

int ipr_rule_apply(enum ipr_rule rule, double tau, double delta,
                   const double *pred, const double *cost, const uint8_t *allowed,
                   size_t n, uint8_t *passed, struct ipr_decision *d)
{
    memset(d, 0, sizeof *d);
    d->model = -1;
    if (!(tau >= 0.0 && tau <= 1.0))
        return ipr_error_set(IPR_ERR_INVAL, "tau must be in [0,1]");
    if (!(delta >= 0.0) || !isfinite(delta))
        return ipr_error_set(IPR_ERR_INVAL, "delta must be a finite number >= 0");
    if ((unsigned)rule >= IPR_RULE_COUNT)
        return ipr_error_set(IPR_ERR_INVAL, "unknown rule %d", (int)rule);

    double hi = -INFINITY, lo = INFINITY;
    size_t n_allowed = 0;
    for (size_t m = 0; m < n; m++) {
        if (allowed && !allowed[m])
            continue;
        if (!isfinite(pred[m]))
            return ipr_error_set(IPR_ERR_PREDICT, "non-finite prediction for candidate %zu", m);
        n_allowed++;
        if (pred[m] > hi) hi = pred[m];
        if (pred[m] < lo) lo = pred[m];
    }
    if (n_allowed == 0)
        return ipr_error_set(IPR_ERR_INVAL, "no candidate model is allowed");

    double thr;
    switch (rule) {
    case IPR_RULE_RANGE: /* at tau = 1 exactly the minimum: hi - (hi - lo) may round above lo */
        thr = tau >= 1.0 ? lo : hi - tau * (hi - lo);
        break;
    case IPR_RULE_DYNMAX:     thr = (1.0 - tau) * hi - delta; break;
    default:                  thr = hi - tau; break;
    }
    if (thr > hi) /* DYNMAX with negative predictions: keep the best passing */
        thr = hi;
    d->threshold = thr;
    d->best_pred = hi;

    int best = -1;
    for (size_t m = 0; m < n; m++) {
        int ok = (!allowed || allowed[m]) && pred[m] >= thr;
        if (passed)
            passed[m] = (uint8_t)ok;
        if (!ok)
            continue;
        d->n_passed++;
        if (best < 0 || cost[m] < cost[best] ||
            (cost[m] == cost[best] && pred[m] > pred[best]))
            best = (int)m;
    }
    /* The best-predicted model always passes (thr <= hi for tau, delta >= 0). */
    d->model = best;
    d->expected_cost = cost[best];
    return IPR_OK;
}
