/*
 * bench_qe.c — figures for the quality estimator (not assertions).
 *
 *   bench_qe predict [d] [m]          p50/p99 of one ipr_qe_predict call
 *   bench_qe train N [d] [m] [epochs] training time and peak RSS on N synthetic
 *                                     rows (0/1 labels from a logistic model of
 *                                     x, 10% missing), default config
 *   bench_qe add N [d] [m]            train on m-1 models, then time
 *                                     ipr_qe_add_adapter for the m-th
 *
 * Run each training size in its own process so that the peak RSS is its own.
 */
#include "ipr/err.h"
#include "ipr/qe.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t st = 88172645463325252ull;
static double urand(void)
{
    st ^= st << 13;
    st ^= st >> 7;
    st ^= st << 17;
    return (double)(st >> 11) * 0x1.0p-53;
}
static double nrand(void)
{
    return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand());
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* n rows of d floats; labels of m models from a shared low-rank logistic model */
static void synth(size_t n, size_t d, size_t m, float **xo, double **yo)
{
    float *x = malloc(n * d * sizeof *x);
    double *y = malloc(n * m * sizeof *y);
    double *w = malloc(m * 8 * sizeof *w), *u = malloc(8 * d * sizeof *u);
    if (!x || !y || !w || !u) {
        fprintf(stderr, "out of memory for %zu rows\n", n);
        exit(1);
    }
    for (size_t i = 0; i < m * 8; i++)
        w[i] = nrand();
    for (size_t i = 0; i < 8 * d; i++)
        u[i] = nrand() / sqrt((double)d);
    for (size_t r = 0; r < n; r++) {
        float *xr = x + r * d;
        for (size_t i = 0; i < d; i++)
            xr[i] = (float)nrand();
        double t[8];
        for (int k = 0; k < 8; k++) {
            t[k] = 0;
            for (size_t i = 0; i < d; i++)
                t[k] += u[k * d + i] * xr[i];
        }
        for (size_t j = 0; j < m; j++) {
            double z = 0.3 * (double)j - 1.5;
            for (int k = 0; k < 8; k++)
                z += w[j * 8 + k] * t[k];
            double p = 1 / (1 + exp(-z));
            y[r * m + j] = urand() < 0.1 ? NAN : (urand() < p ? 1.0 : 0.0);
        }
    }
    free(w), free(u);
    *xo = x;
    *yo = y;
}

static int bench_predict(size_t d, size_t m)
{
    float *x;
    double *y;
    synth(2000, d, m, &x, &y);
    struct ipr_qe_config cfg;
    ipr_qe_config_default(&cfg);
    cfg.max_epochs = 2;
    struct ipr_qe_data data = { 2000, d, m, x, y };
    struct ipr_qe *qe;
    if (ipr_qe_train(&cfg, &data, NULL, &qe, NULL)) {
        fprintf(stderr, "%s\n", ipr_error_message());
        return 1;
    }
    float *scratch = malloc(ipr_qe_scratch_floats(qe) * sizeof *scratch);
    double out[256], sink = 0;
    enum { REPS = 20000 };
    static double t[REPS];
    for (int i = 0; i < 2000; i++)
        ipr_qe_predict(qe, x + (size_t)(i % 2000) * d, scratch, out);
    for (int i = 0; i < REPS; i++) {
        double t0 = now();
        ipr_qe_predict(qe, x + (size_t)(i % 2000) * d, scratch, out);
        t[i] = now() - t0;
        sink += out[0];
    }
    qsort(t, REPS, sizeof *t, cmp_d);
    printf("predict d=%zu hidden=%d adapter_hidden=%d models=%zu: p50 %.2f us, p99 %.2f us (sink %.3f)\n", d,
           cfg.hidden, cfg.adapter_hidden, m, 1e6 * t[REPS / 2], 1e6 * t[REPS * 99 / 100], sink / REPS);
    free(scratch), free(x), free(y);
    ipr_qe_free(qe);
    return 0;
}

static int bench_train(size_t n, size_t d, size_t m, int epochs)
{
    float *x;
    double *y;
    double t0 = now();
    synth(n, d, m, &x, &y);
    double tgen = now() - t0;
    struct ipr_qe_config cfg;
    ipr_qe_config_default(&cfg);
    if (epochs > 0)
        cfg.max_epochs = epochs;
    cfg.verbose = getenv("QE_VERBOSE") != NULL;
    struct ipr_qe_data data = { n, d, m, x, y };
    struct ipr_qe *qe;
    struct ipr_qe_report rep;
    if (ipr_qe_train(&cfg, &data, NULL, &qe, &rep)) {
        fprintf(stderr, "%s\n", ipr_error_message());
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("train n=%zu d=%zu m=%zu: %.2f s (%d epochs, best %d, %.3f s/epoch), val BCE %.4f MAE %.4f, "
           "peak RSS %.0f MiB (data %.0f MiB, generated in %.1f s)\n",
           n, d, m, rep.seconds, rep.epochs, rep.best_epoch, rep.seconds / rep.epochs, rep.val_loss, rep.val_mae,
           (double)ru.ru_maxrss / 1024, (double)n * (d * 4 + m * 8) / 1048576, tgen);
    ipr_qe_free(qe);
    free(x), free(y);
    return 0;
}

static int bench_add(size_t n, size_t d, size_t m)
{
    float *x;
    double *y;
    synth(n, d, m, &x, &y);
    double *y1 = malloc(n * (m - 1) * sizeof *y1), *y2 = malloc(n * sizeof *y2);
    for (size_t r = 0; r < n; r++) {
        memcpy(y1 + r * (m - 1), y + r * m, (m - 1) * sizeof *y);
        y2[r] = y[r * m + m - 1];
    }
    struct ipr_qe_config cfg;
    ipr_qe_config_default(&cfg);
    struct ipr_qe_data d1 = { n, d, m - 1, x, y1 }, d2 = { n, d, 1, x, y2 };
    struct ipr_qe *qe;
    struct ipr_qe_report rep;
    if (ipr_qe_train(&cfg, &d1, NULL, &qe, &rep) || ipr_qe_add_adapter(qe, &cfg, &d2, NULL, &rep)) {
        fprintf(stderr, "%s\n", ipr_error_message());
        return 1;
    }
    printf("add_adapter n=%zu d=%zu (model %zu of %zu): %.3f s (%d epochs), val BCE %.4f\n", n, d, m, m,
           rep.seconds, rep.epochs, rep.val_loss);
    ipr_qe_free(qe);
    free(x), free(y), free(y1), free(y2);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "add") == 0)
        return bench_add(strtoul(argv[2], NULL, 10), argc > 3 ? strtoul(argv[3], NULL, 10) : 472,
                         argc > 4 ? strtoul(argv[4], NULL, 10) : 11);
    if (argc >= 2 && strcmp(argv[1], "predict") == 0)
        return bench_predict(argc > 2 ? strtoul(argv[2], NULL, 10) : 500, argc > 3 ? strtoul(argv[3], NULL, 10) : 11);
    if (argc >= 3 && strcmp(argv[1], "train") == 0)
        return bench_train(strtoul(argv[2], NULL, 10), argc > 3 ? strtoul(argv[3], NULL, 10) : 500,
                           argc > 4 ? strtoul(argv[4], NULL, 10) : 11, argc > 5 ? atoi(argv[5]) : 0);
    fprintf(stderr, "usage: bench_qe predict [d] [m] | bench_qe train N [d] [m] [epochs] | bench_qe add N [d] [m]\n");
    return 2;
}
