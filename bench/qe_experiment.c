/*
 * qe_experiment.c — hyperparameter experiments for the quality estimator on
 * the TRAINING split only (never the test split). Not part of the library.
 *
 *   qe_experiment [--data TRAIN.jsonl] [--registry R.json] [--input full|view|full+view]
 *                 [--folds K] [--seeds N] [--encoder FILE] [--extra OTHER.jsonl]... SPEC...
 *
 * --extra adds another pool's prompts to every training part (their models
 * become extra columns; they are never scored; the knn baseline ignores them).
 *
 * K-fold cross-validation inside the training file: fold f holds the prompts
 * whose id hashes (FNV-1a) to f mod K. For every SPEC (comma-separated
 * key=value overrides of ipr_qe_config_default: hidden, ah, epochs, batch,
 * patience, lr, wd, pw, dropout, calib, floor; ens=K averages K seeds;
 * add=J trains without model J and then adds it with ipr_qe_add_adapter;
 * "knn=K" and "task" are baselines) and each seed, an estimator is trained on the
 * other folds (its own 10% holdout drives early stopping and calibration) and
 * predicts fold f; the out-of-fold predictions of all prompts are then scored
 * together: masked BCE and MAE of the calibrated predictions, top-1 accuracy,
 * per-prompt Spearman, and the range rule's ARQGC and savings with expected
 * cost = mean training cost per model and true cost from the data (missing
 * labels count as 0, DESIGN §4). The boilerplate view is learned from all the
 * training prompts (no labels involved).
 */
#include "ipr/bundle.h"
#include "ipr/data.h"
#include "ipr/encoder.h"
#include "ipr/err.h"
#include "ipr/eval.h"
#include "ipr/qe.h"
#include "ipr/text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ens = 1;       /* models averaged per fold (seeds seed, seed+100, ...) */
static int add_col = -1; /* train without this model, then ipr_qe_add_adapter it */

static int apply_spec(struct ipr_qe_config *c, const char *spec)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *kv = strtok(buf, ","); kv; kv = strtok(NULL, ",")) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return -1;
        *eq = 0;
        double v = atof(eq + 1);
        if (!strcmp(kv, "hidden")) c->hidden = (int)v;
        else if (!strcmp(kv, "ah")) c->adapter_hidden = (int)v;
        else if (!strcmp(kv, "epochs")) c->max_epochs = (int)v;
        else if (!strcmp(kv, "batch")) c->batch = (int)v;
        else if (!strcmp(kv, "patience")) c->patience = (int)v;
        else if (!strcmp(kv, "lr")) c->lr = v;
        else if (!strcmp(kv, "wd")) c->weight_decay = v;
        else if (!strcmp(kv, "pw")) c->pairwise_weight = v;
        else if (!strcmp(kv, "dropout")) c->dropout = v;
        else if (!strcmp(kv, "calib")) c->calibration = (int)v;
        else if (!strcmp(kv, "ens")) ens = (int)v;
        else if (!strcmp(kv, "add")) add_col = (int)v;
        else if (!strcmp(kv, "floor")) c->std_floor = v;
        else return -1;
    }
    return 0;
}

static void die(const char *what)
{
    fprintf(stderr, "qe_experiment: %s: %s\n", what, ipr_error_message());
    exit(1);
}

int main(int argc, char **argv)
{
    const char *data = "data/routerbench/train.jsonl", *regp = "data/routerbench/registry.json", *encp = NULL;
    const char *input_s = "full";
    int seeds = 1, folds = 5, a = 1, n_extra = 0;
    const char *extra[4];
    for (; a < argc && !strncmp(argv[a], "--", 2); a += 2) {
        if (a + 1 >= argc)
            break;
        if (!strcmp(argv[a], "--data")) data = argv[a + 1];
        else if (!strcmp(argv[a], "--registry")) regp = argv[a + 1];
        else if (!strcmp(argv[a], "--encoder")) encp = argv[a + 1];
        else if (!strcmp(argv[a], "--input")) input_s = argv[a + 1];
        else if (!strcmp(argv[a], "--folds")) folds = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--extra") && n_extra < 4) extra[n_extra++] = argv[a + 1];
        else if (!strcmp(argv[a], "--seeds")) seeds = atoi(argv[a + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[a]); return 2; }
    }
    enum ipr_input_mode mode;
    if (ipr_input_mode_parse(input_s, &mode))
        die("--input");
    struct ipr_dataset *ds;
    struct ipr_registry *reg;
    if (ipr_dataset_read(data, &ds))
        die(data);
    if (ipr_registry_read(regp, &reg))
        die(regp);
    char path[4096];
    if (!encp) {
        ipr_encoder_default_path(path, sizeof path);
        encp = path;
    }
    struct ipr_encoder *enc;
    if (ipr_encoder_open(encp, &enc))
        die(encp);

    /* columns in registry order */
    const size_t n = ds->n, m = reg->n;
    int *col = malloc(m * sizeof *col);
    for (size_t j = 0; j < m; j++)
        if ((col[j] = ipr_dataset_model_index(ds, reg->models[j].name)) < 0) {
            fprintf(stderr, "model %s not in the data\n", reg->models[j].name);
            return 1;
        }
    int *fold = malloc(n * sizeof *fold);
    for (size_t i = 0; i < n; i++) {
        uint64_t h = 1469598103934665603ull;
        for (const char *c = ds->prompts[i].id; *c; c++)
            h = (h ^ (uint8_t)*c) * 1099511628211ull;
        fold[i] = (int)(h % (uint64_t)folds);
    }

    struct ipr_view *view = NULL;
    const char **texts = malloc(n * sizeof *texts);
    size_t *lens = malloc(n * sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        texts[i] = ds->prompts[i].text;
        lens[i] = strlen(texts[i]);
    }
    if (mode != IPR_INPUT_FULL && ipr_view_learn(texts, lens, n, &view))
        die("view");
    const size_t d = enc->dim * (mode == IPR_INPUT_FULL_VIEW ? 2 : 1);
    float *X = malloc(n * d * sizeof *X);
    if (ipr_features_batch(enc, view, mode, texts, n, 0, X, NULL, NULL))
        die("features");

    /* extra training rows (other pools): their models become extra columns;
     * they are always in the training part and never scored */
    size_t nx = 0, mx = 0;
    float *Xx = NULL;
    double *Yx = NULL;
    char *xnames[64];
    for (int e = 0; e < n_extra; e++) {
        struct ipr_dataset *de;
        if (ipr_dataset_read(extra[e], &de))
            die(extra[e]);
        int map[64];
        for (size_t j = 0; j < de->n_models && j < 64; j++) {
            int found = -1;
            for (size_t k2 = 0; k2 < m; k2++)
                if (!strcmp(reg->models[k2].name, de->models[j]))
                    found = (int)k2;
            for (size_t k2 = 0; k2 < mx && found < 0; k2++)
                if (!strcmp(xnames[k2], de->models[j]))
                    found = (int)(m + k2);
            if (found < 0 && mx < 64) {
                xnames[mx] = strdup(de->models[j]);
                found = (int)(m + mx++);
            }
            map[j] = found;
        }
        const char **tx = malloc(de->n * sizeof *tx);
        for (size_t i = 0; i < de->n; i++)
            tx[i] = de->prompts[i].text;
        Xx = realloc(Xx, (nx + de->n) * d * sizeof *Xx);
        if (ipr_features_batch(enc, view, mode, tx, de->n, 0, Xx + nx * d, NULL, NULL))
            die("features (extra)");
        free(tx);
        /* label rows with 64 + m columns; compacted to m + mx below */
        Yx = realloc(Yx, (nx + de->n) * (m + 64) * sizeof *Yx);
        for (size_t i = 0; i < de->n; i++) {
            double *row = Yx + (nx + i) * (m + 64);
            for (size_t j = 0; j < m + 64; j++)
                row[j] = NAN;
            for (size_t j = 0; j < de->n_models && j < 64; j++)
                if (map[j] >= 0)
                    row[map[j]] = *ipr_dataset_score(de, i, j);
        }
        nx += de->n;
        ipr_dataset_free(de);
    }
    const size_t mt = m + mx; /* training columns */
    if (nx)
        printf("# extra training rows: %zu, extra models: %zu\n", nx, mx);
    double *y = malloc(n * m * sizeof *y), *q = malloc(n * m * sizeof *q), *c = malloc(n * m * sizeof *c);
    double *E = malloc(n * m * sizeof *E), *meanc = calloc(m, sizeof *meanc), *cntc = calloc(m, sizeof *cntc);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) {
            double v = *ipr_dataset_score(ds, i, (size_t)col[j]), cc = *ipr_dataset_cost(ds, i, (size_t)col[j]);
            y[i * m + j] = v;
            q[i * m + j] = isnan(v) ? 0 : v;
            c[i * m + j] = isnan(cc) ? 0 : cc;
            if (!isnan(cc))
                meanc[j] += cc, cntc[j] += 1;
        }
    for (size_t j = 0; j < m; j++)
        meanc[j] = cntc[j] > 0 ? meanc[j] / cntc[j] : 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++)
            E[i * m + j] = meanc[j];
    struct ipr_eval_ref ref;
    if (ipr_eval_ref_compute(q, c, n, m, &ref))
        die("ref");
    double taus[IPR_EVAL_N_TAUS];
    for (size_t t = 0; t < IPR_EVAL_N_TAUS; t++)
        taus[t] = ipr_eval_tau(t);
    {
        struct ipr_eval_matrix mat = { q, m };
        struct ipr_eval_curve cv;
        struct ipr_eval_summary s;
        ipr_eval_curve_run(q, c, E, n, m, IPR_RULE_RANGE, 0, taus, IPR_EVAL_N_TAUS, ipr_eval_pred_matrix, &mat,
                           NULL, &cv);
        ipr_eval_summarise(&ref, cv.quality, cv.cost, cv.k, &s);
        printf("# data %s input %s d=%zu: %zu prompts, %zu models, %d folds; oracle ARQGC %.4f\n", data, input_s,
               d, n, m, folds, s.arqgc);
        ipr_eval_curve_free(&cv);
    }
    printf("# spec | seeds | out-of-fold: bce mae top1 spearman | ARQGC save@parity save@pgr95 | epochs secs\n");

    double *P = malloc(n * m * sizeof *P);
    float *xa = malloc((n + nx) * d * sizeof *xa);
    double *ya = malloc((n + nx) * mt * sizeof *ya);
    for (int s = a; s < argc; s++) {
        double acc[9] = { 0 };
        for (int sd = 0; sd < seeds; sd++) {
            struct ipr_qe_config cfg;
            ipr_qe_config_default(&cfg);
            ens = 1;
            add_col = -1;
            if (strncmp(argv[s], "knn=", 4) && strcmp(argv[s], "task") && apply_spec(&cfg, argv[s])) {
                fprintf(stderr, "bad spec %s\n", argv[s]);
                return 2;
            }
            cfg.seed = 42 + (uint64_t)sd;
            double epochs = 0, secs = 0;
            int knn_k = !strncmp(argv[s], "knn=", 4) ? atoi(argv[s] + 4) : 0, task = !strcmp(argv[s], "task");
            for (int f = 0; f < folds; f++) {
                size_t na = 0;
                for (size_t i = 0; i < n; i++)
                    if (fold[i] != f) {
                        memcpy(xa + na * d, X + i * d, d * sizeof *X);
                        for (size_t j = 0; j < mt; j++)
                            ya[na * mt + j] = j < m ? y[i * m + j] : NAN;
                        na++;
                    }
                for (size_t i = 0; i < nx; i++, na++) {
                    memcpy(xa + na * d, Xx + i * d, d * sizeof *X);
                    memcpy(ya + na * mt, Yx + i * (m + 64), mt * sizeof *ya);
                }
                if (knn_k || task) { /* baselines on the same folds */
                    for (size_t i = 0; i < n; i++) {
                        if (fold[i] != f)
                            continue;
                        if (knn_k && nx == 0) {
                            ipr_eval_knn_predict(xa, ya, na - nx, X + i * d, 1, d, m, (size_t)knn_k, 1, P + i * m, NULL);
                            continue;
                        }
                        for (size_t j = 0; j < m; j++) {
                            double sm = 0, ct = 0;
                            for (size_t r = 0; r < n; r++)
                                if (fold[r] != f && !isnan(y[r * m + j]) && ds->prompts[r].task &&
                                    ds->prompts[i].task && !strcmp(ds->prompts[r].task, ds->prompts[i].task))
                                    sm += y[r * m + j], ct += 1;
                            P[i * m + j] = ct > 0 ? sm / ct : 0.5;
                        }
                    }
                    continue;
                }
                struct ipr_qe_data dA = { na, d, mt, xa, ya };
                for (int e = 0; e < ens; e++) {
                    struct ipr_qe *qe;
                    struct ipr_qe_report rep;
                    struct ipr_qe_config ce = cfg;
                    ce.seed = cfg.seed + 100 * (uint64_t)e;
                    if (add_col >= 0 && (size_t)add_col < m) {
                        /* the extensibility check: m-1 models jointly, then one adapter */
                        double *y1 = malloc(na * mt * sizeof *y1), *y2 = malloc(na * sizeof *y2);
                        for (size_t r = 0; r < na; r++) {
                            size_t w = 0;
                            for (size_t j = 0; j < mt; j++)
                                if ((int)j != add_col)
                                    y1[r * (mt - 1) + w++] = ya[r * mt + j];
                            y2[r] = ya[r * mt + (size_t)add_col];
                        }
                        struct ipr_qe_data d1 = { na, d, mt - 1, xa, y1 }, d2 = { na, d, 1, xa, y2 };
                        if (ipr_qe_train(&ce, &d1, NULL, &qe, &rep) || ipr_qe_add_adapter(qe, &ce, &d2, NULL, &rep))
                            die("train+add");
                        free(y1), free(y2);
                    } else if (ipr_qe_train(&ce, &dA, NULL, &qe, &rep)) {
                        die("train");
                    }
                    epochs += rep.epochs;
                    secs += rep.seconds;
                    float *scr = malloc(ipr_qe_scratch_floats(qe) * sizeof *scr);
                    double pe[256];
                    for (size_t i = 0; i < n; i++)
                        if (fold[i] == f) {
                            ipr_qe_predict(qe, X + i * d, scr, pe);
                            if (add_col >= 0 && (size_t)add_col < m) { /* back to registry order */
                                double last = pe[mt - 1];
                                for (size_t j = mt - 1; j > (size_t)add_col; j--)
                                    pe[j] = pe[j - 1];
                                pe[add_col] = last;
                            }
                            for (size_t j = 0; j < m; j++)
                                P[i * m + j] = (e ? P[i * m + j] : 0) + pe[j] / ens;
                        }
                    free(scr);
                    ipr_qe_free(qe);
                }
            }
            double bce = 0, mae = 0;
            size_t cnt = 0;
            for (size_t i = 0; i < n * m; i++) {
                if (isnan(y[i]))
                    continue;
                double p = P[i], pc = p < 1e-6 ? 1e-6 : p > 1 - 1e-6 ? 1 - 1e-6 : p;
                bce -= y[i] * log(pc) + (1 - y[i]) * log(1 - pc);
                mae += fabs(p - y[i]);
                cnt++;
            }
            struct ipr_eval_qe qa;
            ipr_eval_qe_compute(P, q, n, m, &qa);
            struct ipr_eval_matrix mat = { P, m };
            struct ipr_eval_curve cv;
            struct ipr_eval_summary sum;
            if (ipr_eval_curve_run(q, c, E, n, m, IPR_RULE_RANGE, 0, taus, IPR_EVAL_N_TAUS, ipr_eval_pred_matrix,
                                   &mat, NULL, &cv))
                die("curve");
            ipr_eval_summarise(&ref, cv.quality, cv.cost, cv.k, &sum);
            double v[9] = { bce / (double)cnt, mae / (double)cnt, qa.top1, qa.spearman, sum.arqgc,
                            isnan(sum.save_parity) ? 0 : sum.save_parity,
                            isnan(sum.save_pgr95) ? 0 : sum.save_pgr95, epochs / folds, secs / folds };
            for (int k = 0; k < 9; k++)
                acc[k] += v[k] / seeds;
            ipr_eval_qe_free(&qa);
            ipr_eval_curve_free(&cv);
        }
        printf("%-40s %d | %.4f %.4f %.3f %.3f | %.4f %5.1f%% %5.1f%% | %.1f %.1f\n", argv[s], seeds, acc[0],
               acc[1], acc[2], acc[3], acc[4], 100 * acc[5], 100 * acc[6], acc[7], acc[8]);
        fflush(stdout);
    }
    return 0;
}
