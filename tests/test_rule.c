/* test_rule.c — the tau rule of DESIGN.md §3 on hand-worked cases. */
#include "check.h"
#include "ipr/err.h"
#include "ipr/router.h"

static const double pred[3] = { 0.9, 0.6, 0.3 };
static const double cost[3] = { 10.0, 2.0, 1.0 };

static int pick(enum ipr_rule rule, double tau, double delta)
{
    struct ipr_decision d;
    int rc = ipr_rule_apply(rule, tau, delta, pred, cost, NULL, 3, NULL, &d);
    return rc == IPR_OK ? d.model : rc;
}

static void test_range(void)
{
    CHECK_EQ_INT(pick(IPR_RULE_RANGE, 0.0, 0), 0);
    CHECK_EQ_INT(pick(IPR_RULE_RANGE, 0.49, 0), 0);  /* thr 0.606 > 0.6 */
    CHECK_EQ_INT(pick(IPR_RULE_RANGE, 0.5, 0), 1);   /* thr 0.6 */
    CHECK_EQ_INT(pick(IPR_RULE_RANGE, 1.0, 0), 2);
    /* 0.9 - 1.0 * (0.9 - 0.3) rounds to 0.30000000000000004: tau = 1 must
     * still let the minimum through. */
    const double p[2] = { 0.9, 0.3 }, c[2] = { 5.0, 1.0 };
    struct ipr_decision d;
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, 1.0, 0, p, c, NULL, 2, NULL, &d), IPR_OK);
    CHECK_EQ_INT(d.model, 1);
}

static void test_dynmax_difference(void)
{
    CHECK_EQ_INT(pick(IPR_RULE_DYNMAX, 0.0, 0), 0);
    CHECK_EQ_INT(pick(IPR_RULE_DYNMAX, 0.34, 0), 1); /* 0.594 */
    CHECK_EQ_INT(pick(IPR_RULE_DYNMAX, 0.34, 0.3), 2);
    CHECK_EQ_INT(pick(IPR_RULE_DIFFERENCE, 0.29, 0), 0);
    CHECK_EQ_INT(pick(IPR_RULE_DIFFERENCE, 0.31, 0), 1);
    CHECK_EQ_INT(pick(IPR_RULE_DIFFERENCE, 0.61, 0), 2);
}

static void test_ties_and_filters(void)
{
    const double p[3] = { 0.5, 0.7, 0.7 }, c[3] = { 1.0, 1.0, 1.0 };
    uint8_t allowed[3] = { 1, 0, 1 }, passed[3];
    struct ipr_decision d;
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, 1.0, 0, p, c, NULL, 3, passed, &d), IPR_OK);
    CHECK_EQ_INT(d.model, 1); /* equal costs: higher prediction, then lower index */
    CHECK_EQ_INT(d.n_passed, 3);
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, 0.0, 0, p, c, allowed, 3, passed, &d), IPR_OK);
    CHECK_EQ_INT(d.model, 2);
    CHECK_EQ_INT(passed[1], 0);
}

static void test_bad_input(void)
{
    double bad[3] = { 0.5, NAN, 0.1 };
    uint8_t none[3] = { 0, 0, 0 };
    struct ipr_decision d;
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, 1.5, 0, pred, cost, NULL, 3, NULL, &d), IPR_ERR_INVAL);
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, NAN, 0, pred, cost, NULL, 3, NULL, &d), IPR_ERR_INVAL);
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_DYNMAX, 0.5, -1, pred, cost, NULL, 3, NULL, &d), IPR_ERR_INVAL);
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, 0.5, 0, bad, cost, NULL, 3, NULL, &d), IPR_ERR_PREDICT);
    CHECK_EQ_INT(ipr_rule_apply(IPR_RULE_RANGE, 0.5, 0, pred, cost, none, 3, NULL, &d), IPR_ERR_INVAL);
    CHECK_EQ_INT(d.model, -1);
    enum ipr_rule r;
    CHECK_EQ_INT(ipr_rule_parse("dynmax", &r), IPR_OK);
    CHECK_EQ_INT(r, IPR_RULE_DYNMAX);
    CHECK_EQ_INT(ipr_rule_parse("nope", &r), IPR_ERR_INVAL);
}

TEST_MAIN(test_range, test_dynmax_difference, test_ties_and_filters, test_bad_input)
