/*
 * features.c — the estimator's input for a batch of prompts, on all cores.
 *
 * Rows are split into fixed contiguous blocks per thread and each row is
 * computed independently, so the matrix does not depend on the thread count.
 */
#include "ipr/bundle.h"
#include "ipr/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
    const struct ipr_encoder *enc;
    const struct ipr_view *view;
    enum ipr_input_mode mode;
    const char *const *texts;
    float *X;
    size_t in_dim, lo, hi;
    atomic_size_t *done;
    atomic_int *finished;
    int rc;
    char err[256];
};

static void *worker(void *arg)
{
    struct job *j = arg;
    struct ipr_embed_ctx *ec = NULL;
    char *vbuf = NULL;
    size_t vcap = 0;
    j->rc = ipr_embed_ctx_new(j->enc, &ec);
    for (size_t i = j->lo; i < j->hi && j->rc == IPR_OK; i++) {
        j->rc = ipr_features(j->enc, j->view, j->mode, ec, &vbuf, &vcap, j->texts[i], strlen(j->texts[i]),
                             j->X + i * j->in_dim);
        atomic_fetch_add(j->done, 1);
    }
    if (j->rc != IPR_OK)
        snprintf(j->err, sizeof j->err, "%s", ipr_error_message());
    if (ec)
        ipr_embed_ctx_free(j->enc, ec);
    free(vbuf);
    atomic_fetch_add(j->finished, 1);
    return NULL;
}

int ipr_features_batch(const struct ipr_encoder *enc, const struct ipr_view *view, enum ipr_input_mode mode,
                       const char *const *texts, size_t n, int threads, float *X,
                       void (*progress)(void *arg, size_t done), void *arg)
{
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    if (threads > 64)
        threads = 64;
    if ((size_t)threads > n)
        threads = n ? (int)n : 1;
    size_t in_dim = enc->dim * (mode == IPR_INPUT_FULL_VIEW ? 2 : 1);
    struct job jobs[64];
    pthread_t tid[64];
    atomic_size_t done = 0;
    atomic_int finished = 0;
    int started = 0, rc = IPR_OK;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ .enc = enc, .view = view, .mode = mode, .texts = texts, .X = X,
                                .in_dim = in_dim, .lo = n * (size_t)t / (size_t)threads,
                                .hi = n * (size_t)(t + 1) / (size_t)threads, .done = &done, .finished = &finished };
        if (t > 0 && pthread_create(&tid[t], NULL, worker, &jobs[t]) != 0) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "cannot start a thread");
            break;
        }
        started = t + 1;
    }
    /* Thread 0's share runs here; progress is reported between its rows. */
    if (progress && threads > 1) {
        pthread_t self_tid;
        if (pthread_create(&self_tid, NULL, worker, &jobs[0]) == 0) {
            size_t last = (size_t)-1;
            for (;;) {
                size_t d = atomic_load(&done);
                if (d != last)
                    progress(arg, d);
                last = d;
                if (atomic_load(&finished) >= started)
                    break;
                usleep(100000);
            }
            pthread_join(self_tid, NULL);
        } else {
            worker(&jobs[0]);
        }
    } else {
        worker(&jobs[0]);
    }
    for (int t = 1; t < started; t++)
        pthread_join(tid[t], NULL);
    if (progress)
        progress(arg, atomic_load(&done));
    for (int t = 0; t < started && rc == IPR_OK; t++)
        if (jobs[t].rc != IPR_OK) {
            rc = ipr_error_set(jobs[t].rc, "%s", jobs[t].err[0] ? jobs[t].err : ipr_strerror(jobs[t].rc));
            break;
        }
    return rc;
}
