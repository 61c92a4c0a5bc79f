/*
 * eval_cmd.h — internal to `ipr eval`: the evaluation state that cmd_eval.c
 * builds (candidates, truth, expected costs, predictions, one entry per
 * policy) and the writers in eval_out.c turn into the table, JSON, Markdown,
 * SVG and the decision dump. Not part of the library.
 */
#ifndef IPR_CLI_EVAL_CMD_H
#define IPR_CLI_EVAL_CMD_H

#include "ipr/data.h"
#include "ipr/encoder.h"
#include "ipr/eval.h"
#include "ipr/router.h"

#include <stddef.h>
#include <stdint.h>

#define EVAL_MAX_ROUTERS 8   /* ipr + 3 rules, knn, random, oracle, single-models */

/* The k tried by the k-NN baseline (DESIGN.md §4 leaves them open). */
extern const size_t eval_knn_cands[6];

/* One evaluated policy. */
struct eval_entry {
    char name[32];
    int kind;            /* 0 = curve over taus, 1 = single-model points */
    enum ipr_rule rule;
    struct ipr_eval_curve cv;
    struct ipr_eval_summary sm;
    int has_qe;
    struct ipr_eval_qe qe;
};

/* Everything one `ipr eval` run holds; cmd_eval.c owns and frees it. */
struct eval_run {
    /* inputs */
    struct ipr_dataset *test, *train;
    struct ipr_router *router;
    struct ipr_registry *reg_owned;
    const struct ipr_registry *reg;
    struct ipr_encoder *enc_owned;
    /* candidates */
    size_t m;
    int col[IPR_MAX_MODELS];      /* test column of candidate j */
    int regi[IPR_MAX_MODELS];     /* registry index of candidate j, -1 if none */
    const char *names[IPR_MAX_MODELS];
    /* matrices over (test n, m) */
    size_t n;
    double *q, *c, *E, *P_ipr, *P_knn;
    int has_default;              /* the router's own operating point */
    double default_tau, default_q, default_c;
    size_t knn_k;
    int knn_chosen;
    double knn_val[8];
    struct ipr_eval_ref ref;
    struct eval_entry e[EVAL_MAX_ROUTERS];
    int n_e;
    const char *expected_cost;
    enum ipr_rule rule;
    double delta;
    uint64_t seed;
    char notes[4][200];
    int n_notes;
};

/* Outputs (eval_out.c). The builders return malloc'd text or NULL on NOMEM;
 * the writers return an ipr_err with the message set. Files are written to a
 * temporary name and renamed. */
void  eval_print_table(const struct eval_run *v, const char *dataset);
char *eval_build_json(const struct eval_run *v, const char *dataset);
char *eval_build_markdown(const struct eval_run *v, const char *dataset);
int   eval_write_dump(const struct eval_run *v, const char *path, const char *who, const double *taus);
int   eval_write_svg(const struct eval_run *v, const char *path, const char *dataset, int log_x);
int   eval_write_atomic(const char *path, const char *data, size_t len);

#endif
