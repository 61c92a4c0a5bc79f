/*
 * eval.h — evaluation of routing policies: quality-cost curves, the metrics of
 * DESIGN.md §4, and the baselines (single models, random, oracle, k-NN).
 *
 * Everything here works on plain arrays, so it depends on neither the encoder
 * nor the router: the caller supplies, for one test split restricted to the
 * candidate models,
 *   q  (n, m)  true quality in [0,1]; a missing label is already 0 (DESIGN §4)
 *   c  (n, m)  true cost in USD of each model's response
 *   E  (n, m)  expected cost the rule sees (registry estimate or mean training
 *              cost per model); never the true cost, which the policy cannot know
 * and a policy's predictions. Every policy goes through ipr_rule_apply(), so
 * policies differ only in their predictions.
 *
 * Definitions (DESIGN.md §4, with the details that section leaves open):
 *  - strongest s: highest mean quality (ties: lower mean cost, then lower
 *    index); cheapest w: lowest mean cost (ties: higher mean quality, then
 *    lower index). Means are plain sums in prompt order divided by n.
 *  - x = (C - C_w)/(C_s - C_w), y = (Q - Q_w)/(Q_s - Q_w).
 *  - ARQGC: drop points with x > 1 (tested on the unclipped x; NaN points are
 *    dropped too), clip the rest to [0,1]^2, add the anchors (0,0) and (1,1),
 *    keep the non-decreasing frontier (sort by x, keep a point when its y is at
 *    least every y before it), take its upper concave envelope and integrate it
 *    over x in [0,1] with the trapezoid rule. The envelope ends at (1,1), so it
 *    covers all of [0,1].
 *  - Savings: a point reaches quality target Qt when
 *        Q >= Qt - IPR_EVAL_EPS * max(1, |Qt|)          (IPR_EVAL_EPS = 1e-12)
 *    so a policy that reproduces the strongest model's choices reaches parity
 *    even when its mean was summed in another order. Parity: Qt = Q_s exactly;
 *    PGR p: Qt = Q_w + p (Q_s - Q_w). The saving is 1 - min{C : reached} / C_s,
 *    NaN ("not reached", JSON null) when no point reaches Qt.
 *  - Degenerate splits (s == w, or Q_s == Q_w, or C_s == C_w) make x or y
 *    undefined: ARQGC is then NaN and the caller reports null.
 *
 * Ownership: functions that fill a struct with arrays allocate them; free with
 * the matching *_free. Inputs are borrowed for the duration of the call.
 */
#ifndef IPR_EVAL_H
#define IPR_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "ipr/router.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IPR_EVAL_EPS 1e-12
#define IPR_EVAL_N_TAUS 101   /* tau = 0, 0.01, ..., 1 */

/* tau of point k of the standard curve: k / 100 (exact decimal nearest). */
double ipr_eval_tau(size_t k);

/* Reference models of a split. */
struct ipr_eval_ref {
    size_t m;
    int strongest, cheapest;     /* s, w (indices into the m candidates) */
    double q_s, c_s, q_w, c_w;
    double *quality;             /* (m) mean quality of each model always used */
    double *cost;                /* (m) mean cost of each model always used */
};
int  ipr_eval_ref_compute(const double *q, const double *c, size_t n, size_t m,
                          struct ipr_eval_ref *ref);
void ipr_eval_ref_free(struct ipr_eval_ref *ref);

/* Normalised coordinates of an operating point; NaN when degenerate. */
double ipr_eval_x(const struct ipr_eval_ref *ref, double cost);
double ipr_eval_y(const struct ipr_eval_ref *ref, double quality);

/* ARQGC of k normalised points (x, y), per the definition above. */
double ipr_eval_arqgc_xy(const double *x, const double *y, size_t k);

/* Saving at quality target level p (1.0 = parity, 0.5/0.8/0.95 = PGR) over k
 * operating points (Q, C); NaN when not reached. */
double ipr_eval_saving(const struct ipr_eval_ref *ref, const double *Q, const double *C,
                       size_t k, double p);

/* The figures of one policy's curve. */
struct ipr_eval_summary {
    double arqgc;                 /* NaN when degenerate */
    double save_parity;           /* NaN = not reached */
    double save_pgr50, save_pgr80, save_pgr95;
    double max_quality;           /* highest Q on the curve */
    double max_quality_cost;      /* its C (the cheaper one among equal Q) */
};
void ipr_eval_summarise(const struct ipr_eval_ref *ref, const double *Q, const double *C,
                        size_t k, struct ipr_eval_summary *out);

/* A policy's curve: one operating point per tau. */
struct ipr_eval_curve {
    size_t k, m;
    double *tau;      /* (k) */
    double *quality;  /* (k) mean true quality */
    double *cost;     /* (k) mean true cost */
    double *share;    /* (k, m) fraction of prompts sent to each model */
};
int  ipr_eval_curve_alloc(struct ipr_eval_curve *cv, size_t k, size_t m);
void ipr_eval_curve_free(struct ipr_eval_curve *cv);

/* Predictions of a policy for prompt i at tau index ti, written to pred (m).
 * Returns IPR_OK or an error code. Called from one thread at a time. */
typedef int (*ipr_eval_pred_fn)(void *user, size_t i, size_t ti, double *pred);

/* Routes every prompt at each of the k taus with rule/delta and fills cv
 * (allocated here). choice (k, n, may be NULL) receives the chosen model of
 * prompt i at tau index ti at choice[ti * n + i]. A prediction the rule
 * rejects (non-finite) is an error: evaluation has no fallback. */
int ipr_eval_curve_run(const double *q, const double *c, const double *E, size_t n, size_t m,
                       enum ipr_rule rule, double delta, const double *taus, size_t k,
                       ipr_eval_pred_fn pred, void *user,
                       int *choice, struct ipr_eval_curve *cv);

/* Predictions fixed across tau: user is a struct ipr_eval_matrix over a
 * (n, m) matrix, which must outlive the call. */
struct ipr_eval_matrix { const double *p; size_t m; };
int ipr_eval_pred_matrix(void *user, size_t i, size_t ti, double *pred);

/* The random baseline: uniform [0,1) predictions drawn afresh for every
 * (prompt, tau, model) from a counter-based generator, so a draw depends only
 * on (seed, i, ti, model) and a dump can be reproduced. */
struct ipr_eval_random { uint64_t seed; size_t m; };
int ipr_eval_pred_random(void *user, size_t i, size_t ti, double *pred);

/* The replay hook for a serving log (the server's `ipr eval --log`): given,
 * for n logged decisions, the observed quality and the cost of the model that
 * answered, the policy's operating point. NaN qualities count as 0. */
void ipr_eval_point(const double *quality, const double *cost, size_t n,
                    double *Q, double *C);

/* QE accuracy of predictions P against q (both (n, m)).
 *  - top-1: the predicted best (highest P; ties to the lower index) is among
 *    the truly best {m : q[m] >= max q - IPR_EVAL_EPS}; prompts whose true
 *    qualities all tie (max - min <= IPR_EVAL_EPS) are left out.
 *  - mae (m): mean |P - q| per model over all prompts.
 *  - spearman: per prompt, Pearson correlation of the fractional ranks
 *    (tied values share the mean of their ranks), averaged over the prompts
 *    where both rank vectors vary; prompts where either is constant are left
 *    out (the correlation is undefined there). */
struct ipr_eval_qe {
    double top1;        /* NaN when no prompt counts */
    size_t top1_n;      /* prompts counted */
    double spearman;    /* NaN when no prompt counts */
    size_t spearman_n;
    double *mae;        /* (m) */
    size_t m;
};
int  ipr_eval_qe_compute(const double *P, const double *q, size_t n, size_t m, struct ipr_eval_qe *out);
void ipr_eval_qe_free(struct ipr_eval_qe *qe);

/* Spearman rank correlation of two vectors of length m (fractional ranks for
 * ties); NaN when either is constant. Exposed for the tests. */
double ipr_eval_spearman(const double *a, const double *b, size_t m);

/* --- k-NN baseline --- */

/* Progress of a long call: fn(user, done, total) is called from the calling
 * thread a few times a second while worker threads run. */
struct ipr_eval_progress {
    void (*fn)(void *user, size_t done, size_t total);
    void *user;
};

/* Predictions of the k-NN router: for each query, the cosine similarity to
 * every reference row (zero vectors have similarity 0), the k most similar
 * (ties to the lower index) and per model the mean of their labels, skipping
 * NaN labels; a model with no label among the k gets its mean over all
 * reference rows (0.5 if it has none at all). threads 0 = all cores;
 * progress may be NULL.
 *   ref_x (n_ref, d), ref_q (n_ref, m) NaN = no label, qx (n_q, d), out (n_q, m). */
int ipr_eval_knn_predict(const float *ref_x, const double *ref_q, size_t n_ref,
                         const float *qx, size_t n_q, size_t d, size_t m,
                         size_t k, int threads, double *out, const struct ipr_eval_progress *progress);

/* Chooses k among cands by the ARQGC of the k-NN router on a validation split
 * of the training rows (is_val[i] != 0), the rest being the reference set; the
 * validation truth is train_q with NaN as 0 and train_c, the rule sees E.
 * Ties go to the smaller k; a k larger than the reference set is skipped.
 * When the validation split is degenerate (no ARQGC), k is ranked by the
 * highest mean quality its curve reaches instead.
 * best_arqgc (may be NULL) receives the validation ARQGC of each candidate. */
int ipr_eval_knn_choose_k(const float *x, const double *train_q, const double *train_c,
                          const double *E, const uint8_t *is_val, size_t n, size_t d, size_t m,
                          const size_t *cands, size_t n_cands,
                          enum ipr_rule rule, double delta, int threads,
                          size_t *k_out, double *arqgc_out, const struct ipr_eval_progress *progress);

/* --- plot --- */

enum ipr_plot_style { IPR_PLOT_LINE = 0, IPR_PLOT_POINTS = 1, IPR_PLOT_LINE_POINTS = 2 };

struct ipr_plot_series {
    const char *name;         /* legend label */
    const char *color;        /* CSS colour, e.g. "#1f77b4" */
    enum ipr_plot_style style;
    size_t n;
    const double *cost;       /* (n) x values: mean cost per prompt, USD */
    const double *quality;    /* (n) y values: mean quality */
    const char *const *labels;/* (n) point labels, or NULL */
    int dashed;
    double radius;            /* point radius in px; 0 = the style's default */
};

struct ipr_plot {
    const char *title;
    const char *subtitle;     /* may be NULL */
    int log_x;
    double hline;             /* a horizontal reference line (NaN = none) */
    const char *hline_label;
    size_t n_series;
    const struct ipr_plot_series *series;
};

/* Writes a standalone SVG quality-vs-cost plot (temporary file, rename).
 * The legend lists the series in order; they are drawn in reverse order, so
 * the first series is on top. */
int ipr_plot_svg_write(const struct ipr_plot *plot, const char *path);

#ifdef __cplusplus
}
#endif
#endif
