/*
 * qe_pool.c — a minimal fork-join thread pool for training. The caller posts
 * n tasks; workers and the caller take task indices from a shared counter
 * until none remain. Results must be written per task (never per thread) so
 * that the outcome does not depend on the schedule.
 */
#include "qe_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define POOL_MAX 64

struct qe_pool {
    int n;                   /* threads including the caller */
    pthread_t th[POOL_MAX];
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long gen;       /* bumped for every job */
    int busy;                /* workers still inside the current job */
    int quit;
    void (*fn)(void *, size_t);
    void *arg;
    size_t ntasks, next;
};

static int take(struct qe_pool *p, size_t *t)
{
    pthread_mutex_lock(&p->mu);
    int ok = p->next < p->ntasks;
    if (ok)
        *t = p->next++;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void *worker(void *arg)
{
    struct qe_pool *p = arg;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        size_t t;
        while (take(p, &t))
            p->fn(p->arg, t);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
}

struct qe_pool *qe_pool_new(int threads)
{
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    if (threads > POOL_MAX)
        threads = POOL_MAX;
    struct qe_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->n = 1;
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&p->th[i], NULL, worker, p) != 0)
            break; /* fewer threads: same results, only slower */
        p->n++;
    }
    return p;
}

void qe_pool_free(struct qe_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p);
}

int qe_pool_threads(const struct qe_pool *p)
{
    return p ? p->n : 1;
}

void qe_pool_run(struct qe_pool *p, void (*fn)(void *arg, size_t task), void *arg, size_t ntasks)
{
    if (!p || p->n == 1 || ntasks <= 1) {
        for (size_t t = 0; t < ntasks; t++)
            fn(arg, t);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->ntasks = ntasks;
    p->next = 0;
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    size_t t;
    while (take(p, &t))
        fn(arg, t);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
