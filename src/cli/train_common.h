/*
 * train_common.h — what `ipr train`, `ipr add-model` and `ipr calibrate`
 * share: the label table of one or more datasets in a registry's model order,
 * and its split into training and validation rows.
 */
#ifndef IPR_CLI_TRAIN_COMMON_H
#define IPR_CLI_TRAIN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "ipr/bundle.h"
#include "ipr/data.h"
#include "ipr/eval.h"

struct table {
    size_t n, m;          /* prompts, registry models */
    const char **ids;     /* (n) borrowed from the datasets */
    const char **texts;   /* (n) borrowed */
    double *y;            /* (n, m) quality, NaN = no label */
    double *c;            /* (n, m) true cost, NaN = unknown */
    double *e;            /* (n, m) the registry's expected cost */
    uint8_t *is_val;      /* (n) */
    uint8_t *from_val;    /* (n) the row came from a --val file */
};

/* Builds the table of the datasets' rows in registry order; the last
 * n_val_ds datasets are validation files. Models of a
 * dataset that the registry lacks are ignored (noted on stderr if notes). */
int  table_build(struct ipr_dataset *const *ds, size_t n_ds, size_t n_val_ds, const struct ipr_registry *reg,
                 int notes, struct table *t);
void table_free(struct table *t);

/* Marks validation rows: those of validation files when there are any, else a
 * hash split of the ids (a fraction val_frac). */
void table_split(struct table *t, double val_frac);

/* Marks fold k of `folds` (by a hash of the id) as validation. */
void table_split_fold(struct table *t, int folds, int k);

/* Reorders the rows (and X, n x d, in place; X may be NULL) so that the
 * training rows come first, each part in its original order; *n_train
 * receives their count. Avoids copying the feature matrix to split it. */
int table_partition(struct table *t, float *X, size_t d, size_t *n_train);

/* Loads each --data/--registry pair list; merges registries in order. */
int load_inputs(const char *cmd, const char *const *data, int n_data, const char *const *regs, int n_regs,
                struct ipr_dataset **ds, struct ipr_registry **reg);

/* The default tau: the largest tau of a validation curve whose mean quality
 * reaches the strongest model's (parity); 0 when none does. */
double parity_tau(const struct ipr_eval_curve *cv, const struct ipr_eval_ref *ref);

#endif
