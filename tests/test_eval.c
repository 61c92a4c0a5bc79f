/* test_eval.c — the metrics of DESIGN.md §4 on hand-computed cases: curves
 * through the tau rule, ARQGC envelope details, savings at and near parity,
 * QE accuracy with ties, and the k-NN baseline. */
#include "check.h"
#include "ipr/err.h"
#include "ipr/eval.h"

static double taus[IPR_EVAL_N_TAUS];

static void init_taus(void)
{
    for (size_t t = 0; t < IPR_EVAL_N_TAUS; t++)
        taus[t] = ipr_eval_tau(t);
}

/* Two prompts, two models: A always right and dear, B right on prompt 1 only.
 * Q_A = 1, C_A = 10; Q_B = 0.5, C_B = 1. Oracle: tau < 1 sends prompt 0 to A
 * and prompt 1 to B (both tie at 1, B cheaper): Q = 1, C = 5.5 -> (x, y) =
 * (0.5, 1); tau = 1 takes B everywhere: (0, 0). Envelope (0,0)-(0.5,1)-(1,1):
 * area 0.25 + 0.5 = 0.75. Saving at parity 1 - 5.5/10 = 0.45. */
static void test_two_by_two(void)
{
    init_taus();
    const double q[4] = { 1, 0, 1, 1 }, c[4] = { 10, 1, 10, 1 }, E[4] = { 10, 1, 10, 1 };
    struct ipr_eval_ref ref;
    CHECK_EQ_INT(ipr_eval_ref_compute(q, c, 2, 2, &ref), IPR_OK);
    CHECK_EQ_INT(ref.strongest, 0);
    CHECK_EQ_INT(ref.cheapest, 1);
    CHECK_NEAR(ref.q_w, 0.5, 0);
    CHECK_NEAR(ref.c_s, 10, 0);

    struct ipr_eval_matrix mx = { q, 2 };
    struct ipr_eval_curve cv;
    int choice[IPR_EVAL_N_TAUS * 2];
    CHECK_EQ_INT(ipr_eval_curve_run(q, c, E, 2, 2, IPR_RULE_RANGE, 0, taus, IPR_EVAL_N_TAUS,
                                    ipr_eval_pred_matrix, &mx, choice, &cv), IPR_OK);
    CHECK_NEAR(cv.quality[0], 1.0, 0);
    CHECK_NEAR(cv.cost[0], 5.5, 0);
    CHECK_NEAR(cv.share[0 * 2 + 0], 0.5, 0);
    CHECK_NEAR(cv.share[0 * 2 + 1], 0.5, 0);
    CHECK_NEAR(cv.quality[99], 1.0, 0);
    CHECK_NEAR(cv.quality[100], 0.5, 0);
    CHECK_NEAR(cv.cost[100], 1.0, 0);
    CHECK_NEAR(cv.share[100 * 2 + 1], 1.0, 0);
    CHECK_EQ_INT(choice[0 * 2 + 0], 0);
    CHECK_EQ_INT(choice[0 * 2 + 1], 1);
    CHECK_EQ_INT(choice[100 * 2 + 0], 1);

    struct ipr_eval_summary s;
    ipr_eval_summarise(&ref, cv.quality, cv.cost, cv.k, &s);
    CHECK_NEAR(s.arqgc, 0.75, 1e-15);
    CHECK_NEAR(s.save_parity, 0.45, 1e-15);
    CHECK_NEAR(s.save_pgr50, 0.45, 1e-15);  /* the only point above y=0.5 costs 5.5 */
    CHECK_NEAR(s.max_quality, 1.0, 0);
    CHECK_NEAR(s.max_quality_cost, 5.5, 0);

    /* The single models' points: exactly the diagonal anchors. */
    ipr_eval_summarise(&ref, ref.quality, ref.cost, 2, &s);
    CHECK_NEAR(s.arqgc, 0.5, 1e-15);
    CHECK_NEAR(s.save_parity, 0.0, 0);
    CHECK_NEAR(s.save_pgr50, 0.0, 0);

    ipr_eval_curve_free(&cv);
    ipr_eval_ref_free(&ref);
}

/* Ties: equal mean quality -> the cheaper is strongest; equal mean cost ->
 * the better is cheapest; NaN labels count as 0. */
static void test_ref_ties(void)
{
    const double q[6] = { 1, 1, NAN, 0, 1, 1 }, c[6] = { 3, 2, 2, 3, 2, 2 };
    struct ipr_eval_ref ref;
    CHECK_EQ_INT(ipr_eval_ref_compute(q, c, 2, 3, &ref), IPR_OK);
    /* Q = (0.5, 1, 0.5), C = (2.5, 2, 2): s = 1 (highest), w = 1 (cost 2, Q 1 > 0.5) */
    CHECK_EQ_INT(ref.strongest, 1);
    CHECK_EQ_INT(ref.cheapest, 1);
    struct ipr_eval_summary s;
    ipr_eval_summarise(&ref, ref.quality, ref.cost, 3, &s);
    CHECK(isnan(s.arqgc)); /* s == w: degenerate */
    ipr_eval_ref_free(&ref);

    const double q2[4] = { 1, 1, 0, 0 }, c2[4] = { 5, 4, 5, 4 };
    CHECK_EQ_INT(ipr_eval_ref_compute(q2, c2, 2, 2, &ref), IPR_OK);
    CHECK_EQ_INT(ref.strongest, 1); /* equal Q 0.5, model 1 cheaper */
    ipr_eval_ref_free(&ref);
}

static void test_parity_epsilon(void)
{
    struct ipr_eval_ref ref = { .q_s = 0.7, .c_s = 10, .q_w = 0.2, .c_w = 1 };
    const double C[3] = { 4, 6, 8 };
    double Q[3] = { 0.7, 0.7, 0.7 };
    CHECK_NEAR(ipr_eval_saving(&ref, Q, C, 3, 1.0), 0.6, 1e-15); /* exactly at parity */
    Q[0] = 0.7 - 1e-15;                                          /* rounding noise */
    CHECK_NEAR(ipr_eval_saving(&ref, Q, C, 3, 1.0), 0.6, 1e-15);
    Q[0] = 0.7 - 1e-9;                                           /* genuinely below */
    CHECK_NEAR(ipr_eval_saving(&ref, Q, C, 3, 1.0), 0.4, 1e-15);
    /* PGR 80: target 0.2 + 0.8 * 0.5 = 0.6 */
    const double Q2[3] = { 0.59, 0.6, 0.9 };
    CHECK_NEAR(ipr_eval_saving(&ref, Q2, C, 3, 0.8), 0.4, 1e-15);
    /* Never reaching parity: NaN ("not reached"). */
    const double Q3[3] = { 0.3, 0.5, 0.69 };
    CHECK(isnan(ipr_eval_saving(&ref, Q3, C, 3, 1.0)));
    CHECK_NEAR(ipr_eval_saving(&ref, Q3, C, 3, 0.5), 0.4, 1e-15);
    /* A point above parity but dearer than the strongest gives a negative saving. */
    const double Q4[1] = { 0.75 }, C4[1] = { 12 };
    CHECK_NEAR(ipr_eval_saving(&ref, Q4, C4, 1, 1.0), -0.2, 1e-15);
}

static void test_envelope(void)
{
    /* anchors only */
    CHECK_NEAR(ipr_eval_arqgc_xy(NULL, NULL, 0), 0.5, 1e-15);
    /* the random mix of w and s: the diagonal */
    double dx[11], dy[11];
    for (int i = 0; i <= 10; i++)
        dx[i] = dy[i] = i / 10.0;
    CHECK_NEAR(ipr_eval_arqgc_xy(dx, dy, 11), 0.5, 1e-15);
    /* x > 1 dropped even when its y is high */
    const double x1[1] = { 1.5 }, y1[1] = { 1.0 };
    CHECK_NEAR(ipr_eval_arqgc_xy(x1, y1, 1), 0.5, 1e-15);
    /* y > 1 clipped: (0.5, 1.2) -> (0.5, 1): 0.25 + 0.5 */
    const double x2[1] = { 0.5 }, y2[1] = { 1.2 };
    CHECK_NEAR(ipr_eval_arqgc_xy(x2, y2, 1), 0.75, 1e-15);
    /* x < 0 clipped to 0: (0, 0.5)-(1,1) = 0.75 */
    const double x3[1] = { -0.2 }, y3[1] = { 0.5 };
    CHECK_NEAR(ipr_eval_arqgc_xy(x3, y3, 1), 0.75, 1e-15);
    /* concavity: (0.4, 0.7) lies under the chord (0.2,0.6)-(0.6,0.95) and is
     * dropped; (0.5, 0.3) is dominated, (0.8, 0.5) decreasing; NaN ignored.
     * Area: 0.2*0.6/2 + 0.4*(0.6+0.95)/2 + 0.4*(0.95+1)/2 = 0.06+0.31+0.39 */
    const double x4[6] = { 0.2, 0.4, 0.6, 0.5, 0.8, NAN }, y4[6] = { 0.6, 0.7, 0.95, 0.3, 0.5, 0.9 };
    CHECK_NEAR(ipr_eval_arqgc_xy(x4, y4, 6), 0.76, 1e-15);
    /* same x twice: the higher y counts */
    const double x5[2] = { 0.5, 0.5 }, y5[2] = { 1.0, 0.2 };
    CHECK_NEAR(ipr_eval_arqgc_xy(x5, y5, 2), 0.75, 1e-15);
    /* a point below the diagonal changes nothing */
    const double x6[1] = { 0.5 }, y6[1] = { 0.1 };
    CHECK_NEAR(ipr_eval_arqgc_xy(x6, y6, 1), 0.5, 1e-15);
}

static void test_top1_mae(void)
{
    const double P[6] = { 0.9, 0.1, 0.2, 0.8, 0.5, 0.5 }, q[6] = { 1, 0, 1, 0, 1, 1 };
    struct ipr_eval_qe qe;
    CHECK_EQ_INT(ipr_eval_qe_compute(P, q, 3, 2, &qe), IPR_OK);
    CHECK_EQ_INT(qe.top1_n, 2); /* prompt 2 ties everywhere: left out */
    CHECK_NEAR(qe.top1, 0.5, 0);
    CHECK_NEAR(qe.mae[0], (0.1 + 0.8 + 0.5) / 3, 1e-15);
    CHECK_NEAR(qe.mae[1], (0.1 + 0.8 + 0.5) / 3, 1e-15);
    /* Spearman on 2 models: +1 for prompt 0, -1 for prompt 1, undefined for 2 */
    CHECK_EQ_INT(qe.spearman_n, 2);
    CHECK_NEAR(qe.spearman, 0.0, 1e-15);
    ipr_eval_qe_free(&qe);

    /* a predicted best that ties with another truly best model counts as a hit */
    const double P2[3] = { 0.1, 0.9, 0.3 }, q2[3] = { 1, 1, 0 };
    CHECK_EQ_INT(ipr_eval_qe_compute(P2, q2, 1, 3, &qe), IPR_OK);
    CHECK_NEAR(qe.top1, 1.0, 0);
    ipr_eval_qe_free(&qe);
}

static void test_spearman_ties(void)
{
    const double a[4] = { 1, 2, 2, 3 }, b[4] = { 1, 2, 3, 4 };
    /* ranks a = (1, 2.5, 2.5, 4): 4.5 / sqrt(4.5 * 5) */
    CHECK_NEAR(ipr_eval_spearman(a, b, 4), 4.5 / sqrt(22.5), 1e-15);
    const double c[4] = { 4, 3, 2, 1 };
    CHECK_NEAR(ipr_eval_spearman(b, c, 4), -1.0, 1e-15);
    const double k[4] = { 0.5, 0.5, 0.5, 0.5 };
    CHECK(isnan(ipr_eval_spearman(k, b, 4)));
}

static void test_random_reproducible(void)
{
    struct ipr_eval_random r = { 42, 5 };
    double p1[5], p2[5], p3[5];
    ipr_eval_pred_random(&r, 7, 3, p1);
    ipr_eval_pred_random(&r, 7, 3, p2);
    ipr_eval_pred_random(&r, 7, 4, p3);
    int same = 1, differ = 0;
    for (int j = 0; j < 5; j++) {
        same &= p1[j] == p2[j];
        differ |= p1[j] != p3[j];
        CHECK(p1[j] >= 0.0 && p1[j] < 1.0);
    }
    CHECK(same);
    CHECK(differ);
}

static void test_knn(void)
{
    const float rx[8] = { 1, 0, 0.9f, 0.1f, 0, 1, 0.1f, 0.9f };
    const double rq[8] = { 1, 0, 1, 0, 0, 1, 0, NAN };
    const float qx[6] = { 1, 0.05f, 0.05f, 1, 0, 0 };
    double out[6];
    CHECK_EQ_INT(ipr_eval_knn_predict(rx, rq, 4, qx, 3, 2, 2, 2, 2, out, NULL), IPR_OK);
    CHECK_NEAR(out[0], 1, 0);
    CHECK_NEAR(out[1], 0, 0);
    CHECK_NEAR(out[2], 0, 0);
    CHECK_NEAR(out[3], 1, 0); /* NaN label of row 3 skipped */
    /* zero query: every similarity 0, ties to the lower index: rows 0 and 1 */
    CHECK_NEAR(out[4], 1, 0);
    CHECK_NEAR(out[5], 0, 0);
    /* k larger than the reference set: the whole set */
    CHECK_EQ_INT(ipr_eval_knn_predict(rx, rq, 4, qx, 1, 2, 2, 10, 1, out, NULL), IPR_OK);
    CHECK_NEAR(out[0], 0.5, 1e-15);
    CHECK_NEAR(out[1], 1.0 / 3.0, 1e-15); /* labels 0, 0, 1 and one missing */
    /* the model-1 label missing among the 1 nearest: the model's overall mean */
    const float q1[2] = { 0.1f, 0.9f };
    CHECK_EQ_INT(ipr_eval_knn_predict(rx, rq, 4, q1, 1, 2, 2, 1, 1, out, NULL), IPR_OK);
    CHECK_NEAR(out[1], 1.0 / 3.0, 1e-15);
}

/* k selection: two clusters with opposite winners; k = 1 routes perfectly,
 * large k blurs the clusters. */
static void test_knn_choose_k(void)
{
    enum { N = 40, D = 2, M = 2 };
    float x[N * D];
    double q[N * M], c[N * M], E[N * M];
    uint8_t val[N];
    for (int i = 0; i < N; i++) {
        int cl = i % 2;
        x[i * D + 0] = cl ? 0.05f * (float)(i % 5) : 1.0f;
        x[i * D + 1] = cl ? 1.0f : 0.05f * (float)(i % 5);
        q[i * M + 0] = 1;            /* the dear model always right */
        q[i * M + 1] = cl ? 1 : 0;   /* the cheap one only on cluster 1 */
        c[i * M + 0] = E[i * M + 0] = 10;
        c[i * M + 1] = E[i * M + 1] = 1;
        val[i] = i % 4 < 2;
    }
    const size_t cands[3] = { 1, 5, 19 };
    double a[3];
    size_t k = 0;
    CHECK_EQ_INT(ipr_eval_knn_choose_k(x, q, c, E, val, N, D, M, cands, 3, IPR_RULE_RANGE, 0, 2, &k, a, NULL),
                 IPR_OK);
    CHECK_EQ_INT(k, 1);
    CHECK(a[0] >= a[1] && a[1] > a[2] - 1e-12);
    CHECK(isnan(a[2]) == 0);
}

TEST_MAIN(test_two_by_two, test_ref_ties, test_parity_epsilon, test_envelope, test_top1_mae,
          test_spearman_ties, test_random_reproducible, test_knn, test_knn_choose_k)
