/*
 * qe.h — quality estimators: predicted quality in [0,1] of each candidate model
 * for a prompt embedding (DESIGN.md §1).
 *
 * Architecture: the embedding x (d floats) is standardised with statistics
 * stored in the model, goes through a shared trunk trained once on every
 * model's labels (and then frozen), and one small adapter per candidate model
 * maps the trunk's features to a logit; sigmoid and a per-model post-hoc
 * calibration give the quality. Adding a model trains only its adapter
 * (ipr_qe_add_adapter); every other byte of the saved estimator is unchanged.
 *
 * Training: minibatch Adam with weight decay, masked cross-entropy on [0,1]
 * targets (missing labels are NaN and masked out), optional pairwise ranking
 * loss between models on the same prompt, early stopping on the validation
 * set, deterministic for a seed and independent of the thread count.
 */
#ifndef IPR_QE_H
#define IPR_QE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ipr_qe_config {
    int hidden;             /* shared trunk width; 0 = no trunk (adapters on x) */
    int adapter_hidden;     /* adapter hidden width; 0 = linear adapter */
    int max_epochs;
    int batch;
    int patience;           /* epochs without validation improvement before stopping */
    double lr;
    double weight_decay;
    double pairwise_weight; /* 0 = off */
    double dropout;         /* on trunk features while training; 0 = off */
    int threads;            /* 0 = all cores */
    uint64_t seed;
    int verbose;            /* progress lines on stderr */
    /* additions (issue 4, QE) */
    int calibration;        /* enum ipr_qe_calibration: which post-hoc calibrators may be chosen */
    double std_floor;       /* standardisation: each feature's std is raised to at least
                               std_floor x the median std (0 = plain z-scores) */
    int eval_every;         /* also check validation every this many training rows within
                               an epoch (0 = only at epoch ends); patience counts checks */
};

/* Post-hoc calibration per model, fitted on the validation rows. AUTO picks
 * none, Platt or isotonic by 2-fold cross-fitted cross-entropy; the others
 * force one family (isotonic and Platt still need >= 20 labelled rows). */
enum ipr_qe_calibration {
    IPR_QE_CALIB_AUTO = 0,
    IPR_QE_CALIB_OFF = 1,
    IPR_QE_CALIB_PLATT = 2,
    IPR_QE_CALIB_ISOTONIC = 3,
    IPR_QE_CALIB_MONOTONE = 4, /* AUTO without isotonic: none or Platt per model */
    IPR_QE_CALIB_SHARED = 5,   /* one Platt scaling for all models, fitted on their pooled
                                  validation labels: keeps every prompt's ranking of models;
                                  add_adapter reuses it for the new model */
};

/* Defaults that suit a few thousand to a few million prompts. */
void ipr_qe_config_default(struct ipr_qe_config *cfg);

/* A training table: n prompts with d-dim embeddings and m models' labels. */
struct ipr_qe_data {
    size_t n, d, m;
    const float *x;   /* (n, d) */
    const double *y;  /* (n, m) quality in [0,1], NaN = no label */
};

struct ipr_qe_report {
    int epochs;            /* epochs run */
    int best_epoch;
    double train_loss;     /* masked BCE at the best epoch */
    double val_loss;
    double val_mae;        /* mean absolute error of calibrated predictions */
    double seconds;
};

struct ipr_qe;

/* Trains a new estimator for m models. val may be NULL (then 10% of train,
 * chosen by the seed, is held out for early stopping and calibration). */
int ipr_qe_train(const struct ipr_qe_config *cfg, const struct ipr_qe_data *train,
                 const struct ipr_qe_data *val, struct ipr_qe **out, struct ipr_qe_report *rep);

/* Trains one more adapter on the frozen standardisation and trunk, from a
 * single model's labels (train->m == 1 and val->m == 1). The new model gets
 * index ipr_qe_n_models() - 1. */
int ipr_qe_add_adapter(struct ipr_qe *qe, const struct ipr_qe_config *cfg,
                       const struct ipr_qe_data *train, const struct ipr_qe_data *val,
                       struct ipr_qe_report *rep);

size_t ipr_qe_n_models(const struct ipr_qe *qe);
size_t ipr_qe_dim(const struct ipr_qe *qe);        /* expected embedding size d */
size_t ipr_qe_scratch_floats(const struct ipr_qe *qe);

/* Calibrated predictions for one embedding: out has n_models entries.
 * scratch holds ipr_qe_scratch_floats() floats. Allocates nothing; safe to call
 * from several threads with separate scratch. */
void ipr_qe_predict(const struct ipr_qe *qe, const float *x, float *scratch, double *out);

/* Serialisation: a self-describing little-endian blob (magic, version, sizes,
 * then the parts; described in src/qe/qe_io.c). Load validates every size
 * against len and copies what it needs, so buf may be unmapped afterwards. */
int ipr_qe_save(const struct ipr_qe *qe, uint8_t **buf, size_t *len);
int ipr_qe_load(const uint8_t *buf, size_t len, struct ipr_qe **out);
void ipr_qe_free(struct ipr_qe *qe);

#ifdef __cplusplus
}
#endif
#endif
