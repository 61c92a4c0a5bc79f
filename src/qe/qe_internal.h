/*
 * qe_internal.h — private to src/qe (and to the tests): the estimator's memory
 * layout, the training engine ("net": an optional dense trunk plus m adapters
 * over a flat float parameter vector), the calibrators and a tiny thread pool.
 *
 * Numbers are float for parameters and activations; losses are summed in
 * double. Every reduction runs in a fixed order that depends only on the data
 * and the seed, never on the number of threads: a minibatch is cut into chunks
 * of QE_CHUNK rows, each chunk writes its own gradient buffer, and buffers are
 * summed chunk 0, 1, 2, ... element by element.
 */
#ifndef IPR_QE_INTERNAL_H
#define IPR_QE_INTERNAL_H

#include "ipr/qe.h"

#include <stddef.h>
#include <stdint.h>

#define QE_CHUNK 32          /* rows per gradient chunk (fixed: part of the numerics) */
#define QE_MAX_DIM (1u << 20) /* limits on every width read from a blob */
#define QE_MAX_WIDTH 65536u
#define QE_MAX_KNOTS (1u << 20)

enum qe_calib { QE_CALIB_NONE = 0, QE_CALIB_PLATT = 1, QE_CALIB_ISOTONIC = 2 };

/* One model's head: features (in) -> [dense ah, ReLU] -> logit -> calibration.
 * w holds qe_adapter_nparams(in, ah) floats: W (ah,in), b (ah), w2 (ah), b2 (1)
 * when ah > 0; w (in), b (1) when linear. */
struct qe_adapter {
    size_t in, ah;
    float *w;
    int calib;          /* enum qe_calib */
    double ca, cb;      /* Platt: p = sigmoid(ca * z + cb) */
    size_t nk;          /* isotonic: knots, linear interpolation in z */
    float *kz, *kp;     /* (nk) increasing logits, nondecreasing probabilities */
    double n_train, n_val, val_loss, val_mae; /* informative, saved */
};

struct ipr_qe {
    size_t d, hidden;            /* hidden == 0: no trunk, adapters read x standardised */
    float *mean, *scale;         /* (d) xs = (x - mean) * scale */
    float *w1, *b1;              /* (hidden, d), (hidden) */
    struct ipr_qe_config info;   /* config that trained the trunk (threads, verbose zeroed) */
    size_t m, cap;
    struct qe_adapter *ad;       /* (m) */
};

size_t qe_adapter_nparams(size_t in, size_t ah);
void qe_adapter_clear(struct qe_adapter *a);
/* Logit of adapter a on features f (in floats); tmp holds a->ah floats. */
float qe_adapter_logit(const struct qe_adapter *a, const float *f, float *tmp);
/* Calibrated probability for a logit. */
double qe_calibrate(const struct qe_adapter *a, double z);

/* Deterministic dot product: 4 x 8-lane partial sums and a scalar tail, added
 * in a fixed tree, so every build and clone gives the same bits. */
float qe_dot(const float *a, const float *b, size_t n);

/* --- training engine --- */

struct qe_net {
    size_t in;        /* input width */
    size_t hidden;    /* trunk width, 0 = no trunk */
    size_t m;         /* adapters (= label columns) */
    size_t ah;        /* adapter hidden width, 0 = linear */
    size_t feat;      /* adapter input width: hidden, or in without trunk */
    size_t n_trunk;   /* hidden*in + hidden */
    size_t n_adapter; /* qe_adapter_nparams(feat, ah) */
    size_t n_params;  /* n_trunk + m * n_adapter */
    const float *mean, *scale; /* (in) standardisation; NULL = identity */
    float dropout;    /* on the adapters' input, training only */
    double pairwise;  /* weight of the pairwise ranking loss */
    uint64_t seed;
};

void qe_net_setup(struct qe_net *net, size_t in, size_t hidden, size_t m, size_t ah);
/* Floats of per-chunk work space qe_net_chunk needs. */
size_t qe_net_work_floats(const struct qe_net *net);

/* Rows of a table: x (.., in) and y (.., m) labels, NaN = missing. */
struct qe_src {
    const float *x;
    const double *y;
};

/* Loss over up to QE_CHUNK rows (indices into src). When grad is non-NULL, the
 * gradient of  inv_lab * sum(BCE) + pairwise * inv_pairs * sum(pair losses)
 * is written (overwritten, not added) to grad (n_params). Dropout is applied
 * when train != 0, with masks drawn from (seed, step, row index). Adds the
 * plain sums of BCE and pairwise loss to *bce and *pair; when zout is
 * non-NULL the logits (nrows, m) are copied there. */
void qe_net_chunk(const struct qe_net *net, const float *theta, struct qe_src src,
                  const size_t *rows, size_t nrows, int train, uint64_t step,
                  double inv_lab, double inv_pairs, float *grad, float *work,
                  double *bce, double *pair, float *zout);

/* Counts labelled entries and ranked pairs (different labels) of a row. */
void qe_row_counts(const double *y, size_t m, size_t *lab, size_t *pairs);

/* Per-parameter flags: 1 = weight (decayed), 0 = bias. */
void qe_net_decay_mask(const struct qe_net *net, uint8_t *mask);
/* He-style initialisation from the seed; output biases start at logit(prior[j])
 * (prior may be NULL). */
void qe_net_init(const struct qe_net *net, float *theta, uint64_t seed, const double *prior);

struct qe_pool;
struct qe_pool *qe_pool_new(int threads);
void qe_pool_free(struct qe_pool *p);
int qe_pool_threads(const struct qe_pool *p);
/* Runs fn(arg, t) for t in [0, ntasks) on the pool's threads and the caller;
 * returns when all are done. Which thread runs which task is unspecified. */
void qe_pool_run(struct qe_pool *p, void (*fn)(void *arg, size_t task), void *arg, size_t ntasks);

/* Trains theta in place: Adam with decoupled weight decay, early stopping on
 * the val rows' objective, best weights restored. Fills rep's epochs,
 * best_epoch and train_loss. Returns IPR_OK or IPR_ERR_NOMEM. */
int qe_fit(const struct qe_net *net, float *theta, struct qe_src tr, const size_t *tr_rows,
           size_t n_tr, struct qe_src va, const size_t *va_rows, size_t n_va,
           const struct ipr_qe_config *cfg, struct qe_pool *pool, struct ipr_qe_report *rep);

/* Logits (rows, m) of the given rows, without dropout, computed in parallel. */
int qe_net_logits(const struct qe_net *net, const float *theta, struct qe_src src,
                  const size_t *rows, size_t n, struct qe_pool *pool, float *z);

/* Fits the calibration of a from n (logit, label) pairs, choosing among the
 * families that policy (enum ipr_qe_calibration) allows by 2-fold
 * cross-fitted BCE. */
int qe_fit_calibration(struct qe_adapter *a, const float *z, const double *y, size_t n, int policy);

/* Stable helpers. */
double qe_softplus(double z);
double qe_sigmoid(double z);
uint64_t qe_splitmix(uint64_t *state);

#endif
