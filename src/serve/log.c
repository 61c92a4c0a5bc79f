/*
 * log.c — the decision log: every routing decision in an embedded SQLite
 * database, written off the request path.
 *
 * Request threads append records to an in-memory queue (a mutex and a
 * condition variable; never any disk I/O). One writer thread takes up to
 * `batch` records at a time, or whatever is queued once the oldest record has
 * waited flush_s, and commits them in one transaction. The database runs in
 * WAL mode with synchronous=NORMAL: a committed batch survives the process
 * being killed (SIGKILL); a power cut may lose the last batches, never corrupt
 * the file. Feedback and flush requests travel through the same queue, so
 * they see every decision queued before them. The queue is bounded: when the
 * disk cannot keep up, new records are dropped and counted rather than
 * growing memory without bound.
 */
#include "ipr/serve.h"
#include "ipr/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_MAX 200000

enum op_kind { OP_RECORD, OP_FEEDBACK, OP_FLUSH };

struct op {
    struct op *next;
    enum op_kind kind;
    struct ipr_declog_record rec;      /* OP_RECORD; OP_FEEDBACK uses rec.id */
    double quality;
    /* synchronous ops: the caller waits for done */
    int done, result;
};

struct ipr_declog {
    sqlite3 *db;
    sqlite3_stmt *ins, *fb;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    struct op *head, *tail;
    size_t queued;
    double oldest;          /* monotonic time of the oldest queued record */
    int stop;
    unsigned batch;
    double flush_s;
    uint64_t written, dropped, batches;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS decisions ("
    " id TEXT PRIMARY KEY, ts REAL, endpoint TEXT, router TEXT, tau REAL, rule TEXT,"
    " model TEXT, answered TEXT, threshold REAL, expected_cost REAL, fallback_used INTEGER,"
    " upstream_fallback INTEGER, upstream_status INTEGER, latency_us REAL, upstream_ms REAL,"
    " predictions TEXT, costs TEXT, quality REAL, feedback_ts REAL);";

static int db_fail(sqlite3 *db, const char *path, const char *what)
{
    return ipr_error_set(IPR_ERR_IO, "%s: %s: %s", path, what, db ? sqlite3_errmsg(db) : "cannot open");
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void write_record(struct ipr_declog *log, const struct ipr_declog_record *r)
{
    sqlite3_stmt *st = log->ins;
    sqlite3_reset(st);
    bind_text(st, 1, r->id);
    sqlite3_bind_double(st, 2, r->ts);
    bind_text(st, 3, r->endpoint);
    bind_text(st, 4, r->router);
    sqlite3_bind_double(st, 5, r->tau);
    bind_text(st, 6, r->rule);
    bind_text(st, 7, r->model);
    bind_text(st, 8, r->answered);
    if (isfinite(r->threshold)) sqlite3_bind_double(st, 9, r->threshold); else sqlite3_bind_null(st, 9);
    if (isfinite(r->expected_cost)) sqlite3_bind_double(st, 10, r->expected_cost); else sqlite3_bind_null(st, 10);
    sqlite3_bind_int(st, 11, r->fallback_used);
    sqlite3_bind_int(st, 12, r->upstream_fallback);
    sqlite3_bind_int(st, 13, r->upstream_status);
    sqlite3_bind_double(st, 14, r->latency_us);
    sqlite3_bind_double(st, 15, r->upstream_ms);
    bind_text(st, 16, r->predictions);
    bind_text(st, 17, r->costs);
    if (sqlite3_step(st) == SQLITE_DONE)
        log->written++;
    else
        log->dropped++; /* e.g. a duplicate id: counted, never fatal */
}

static int write_feedback(struct ipr_declog *log, const char *id, double q)
{
    sqlite3_stmt *st = log->fb;
    sqlite3_reset(st);
    sqlite3_bind_double(st, 1, q);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sqlite3_bind_double(st, 2, (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        return IPR_ERR_IO;
    return sqlite3_changes(log->db) > 0 ? IPR_OK : IPR_ERR_NOTFOUND;
}

static void free_op(struct op *o)
{
    free(o->rec.predictions);
    free(o->rec.costs);
    free(o);
}

static void *writer_main(void *arg)
{
    struct ipr_declog *log = arg;
    pthread_mutex_lock(&log->mu);
    for (;;) {
        /* Wait until a batch is full, the oldest record is due, a sync op
         * waits, or we stop. */
        while (!log->stop) {
            if (log->head && (log->queued >= log->batch || log->head->kind != OP_RECORD ||
                              mono() - log->oldest >= log->flush_s))
                break;
            int sync = 0;
            for (struct op *o = log->head; o; o = o->next)
                if (o->kind != OP_RECORD) { sync = 1; break; }
            if (sync)
                break;
            if (!log->head) {
                pthread_cond_wait(&log->cv_work, &log->mu);
            } else {
                double due = log->oldest + log->flush_s;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
                double wait = due - now;
                if (wait <= 0)
                    break;
                /* cv uses CLOCK_MONOTONIC (set at init) */
                double t = now + wait;
                ts.tv_sec = (time_t)t;
                ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
                pthread_cond_timedwait(&log->cv_work, &log->mu, &ts);
            }
        }
        if (!log->head && log->stop)
            break;
        struct op *list = log->head;
        log->head = log->tail = NULL;
        log->queued = 0;
        pthread_mutex_unlock(&log->mu);

        /* Commit the records in batches; answer sync ops after what precedes
         * them is committed. */
        struct op *sync_done = NULL, **sync_tail = &sync_done;
        int in_tx = 0;
        unsigned n_in_tx = 0;
        for (struct op *o = list, *next; o; o = next) {
            next = o->next;
            if (o->kind == OP_RECORD) {
                if (!in_tx) {
                    sqlite3_exec(log->db, "BEGIN", NULL, NULL, NULL);
                    in_tx = 1;
                }
                write_record(log, &o->rec);
                free_op(o);
                if (++n_in_tx >= log->batch) {
                    sqlite3_exec(log->db, "COMMIT", NULL, NULL, NULL);
                    log->batches++;
                    in_tx = 0;
                    n_in_tx = 0;
                }
                continue;
            }
            if (in_tx) {
                sqlite3_exec(log->db, "COMMIT", NULL, NULL, NULL);
                log->batches++;
                in_tx = 0;
                n_in_tx = 0;
            }
            o->result = o->kind == OP_FEEDBACK ? write_feedback(log, o->rec.id, o->quality) : IPR_OK;
            o->next = NULL;
            *sync_tail = o;
            sync_tail = &o->next;
        }
        if (in_tx) {
            sqlite3_exec(log->db, "COMMIT", NULL, NULL, NULL);
            log->batches++;
        }
        pthread_mutex_lock(&log->mu);
        for (struct op *o = sync_done, *next; o; o = next) {
            next = o->next;
            o->done = 1; /* the waiting caller frees it */
        }
        if (sync_done)
            pthread_cond_broadcast(&log->cv_done);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

int ipr_declog_open(const char *path, unsigned batch, double flush_s, struct ipr_declog **out)
{
    *out = NULL;
    struct ipr_declog *log = calloc(1, sizeof *log);
    if (!log)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    log->batch = batch ? batch : 256;
    log->flush_s = flush_s > 0 ? flush_s : 0.05;
    int rc;
    if (sqlite3_open_v2(path, &log->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        rc = db_fail(log->db, path, "cannot open the decision log");
        goto err;
    }
    sqlite3_busy_timeout(log->db, 5000);
    if (sqlite3_exec(log->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(log->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(log->db, path, "cannot set up the decision log");
        goto err;
    }
    if (sqlite3_prepare_v2(log->db,
            "INSERT INTO decisions (id, ts, endpoint, router, tau, rule, model, answered, threshold,"
            " expected_cost, fallback_used, upstream_fallback, upstream_status, latency_us, upstream_ms,"
            " predictions, costs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &log->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(log->db, "UPDATE decisions SET quality = ?, feedback_ts = ? WHERE id = ?",
                           -1, &log->fb, NULL) != SQLITE_OK) {
        rc = db_fail(log->db, path, "cannot prepare statements");
        goto err;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->cv_work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&log->cv_done, NULL);
    pthread_mutex_init(&log->mu, NULL);
    if (pthread_create(&log->thread, NULL, writer_main, log) != 0) {
        pthread_cond_destroy(&log->cv_work);
        pthread_cond_destroy(&log->cv_done);
        pthread_mutex_destroy(&log->mu);
        rc = ipr_error_set(IPR_ERR_NOMEM, "cannot start the log writer thread");
        goto err;
    }
    *out = log;
    return IPR_OK;
err:
    sqlite3_finalize(log->ins);
    sqlite3_finalize(log->fb);
    sqlite3_close(log->db);
    free(log);
    return rc;
}

static void enqueue_locked(struct ipr_declog *log, struct op *o)
{
    o->next = NULL;
    if (log->tail)
        log->tail->next = o;
    else {
        log->head = o;
        log->oldest = mono();
    }
    log->tail = o;
    log->queued++;
}

int ipr_declog_append(struct ipr_declog *log, struct ipr_declog_record *rec)
{
    struct op *o = malloc(sizeof *o);
    if (!o) {
        free(rec->predictions);
        free(rec->costs);
        rec->predictions = rec->costs = NULL;
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    o->kind = OP_RECORD;
    o->rec = *rec;
    rec->predictions = rec->costs = NULL;
    pthread_mutex_lock(&log->mu);
    if (log->queued >= QUEUE_MAX || log->stop) {
        log->dropped++;
        pthread_mutex_unlock(&log->mu);
        free_op(o);
        return ipr_error_set(IPR_ERR_LIMIT, "decision log queue full: record dropped");
    }
    enqueue_locked(log, o);
    if (log->queued >= log->batch || log->queued == 1)
        pthread_cond_signal(&log->cv_work);
    pthread_mutex_unlock(&log->mu);
    return IPR_OK;
}

static int sync_op(struct ipr_declog *log, enum op_kind kind, const char *id, double q)
{
    struct op *o = calloc(1, sizeof *o);
    if (!o)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    o->kind = kind;
    if (id)
        snprintf(o->rec.id, sizeof o->rec.id, "%s", id);
    o->quality = q;
    pthread_mutex_lock(&log->mu);
    if (log->stop) {
        pthread_mutex_unlock(&log->mu);
        free(o);
        return ipr_error_set(IPR_ERR_IO, "decision log is closing");
    }
    enqueue_locked(log, o);
    pthread_cond_signal(&log->cv_work);
    while (!o->done)
        pthread_cond_wait(&log->cv_done, &log->mu);
    pthread_mutex_unlock(&log->mu);
    int rc = o->result;
    free(o);
    if (rc == IPR_ERR_NOTFOUND)
        return ipr_error_set(rc, "no logged decision with id '%s'", id);
    if (rc)
        return ipr_error_set(rc, "decision log write failed");
    return IPR_OK;
}

int ipr_declog_feedback(struct ipr_declog *log, const char *id, double quality)
{
    return sync_op(log, OP_FEEDBACK, id, quality);
}

int ipr_declog_flush(struct ipr_declog *log)
{
    return sync_op(log, OP_FLUSH, NULL, 0);
}

void ipr_declog_stats(struct ipr_declog *log, uint64_t *written, uint64_t *dropped, uint64_t *batches)
{
    pthread_mutex_lock(&log->mu);
    *written = log->written;
    *dropped = log->dropped;
    *batches = log->batches;
    pthread_mutex_unlock(&log->mu);
}

void ipr_declog_close(struct ipr_declog *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    log->stop = 1;
    pthread_cond_signal(&log->cv_work);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);
    sqlite3_finalize(log->ins);
    sqlite3_finalize(log->fb);
    sqlite3_exec(log->db, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    sqlite3_close(log->db);
    pthread_cond_destroy(&log->cv_work);
    pthread_cond_destroy(&log->cv_done);
    pthread_mutex_destroy(&log->mu);
    free(log);
}

/* ----------------------------------------------------------------- reading */

void ipr_declog_table_free(struct ipr_declog_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_models; i++)
        free(t->models[i]);
    for (size_t i = 0; i < t->n; i++) {
        free(t->ids[i]);
        free(t->routers[i]);
    }
    free(t->models);
    free(t->ids);
    free(t->routers);
    free(t->tau);
    free(t->pred);
    free(t->cost);
    free(t->chosen);
    free(t->expected_cost);
    free(t->quality);
    free(t);
}

static int model_index(struct ipr_declog_table *t, const char *name, int add)
{
    for (size_t i = 0; i < t->n_models; i++)
        if (strcmp(t->models[i], name) == 0)
            return (int)i;
    if (!add)
        return -1;
    void *p = realloc(t->models, (t->n_models + 1) * sizeof *t->models);
    if (!p)
        return -2;
    t->models = p;
    if (!(t->models[t->n_models] = strdup(name)))
        return -2;
    return (int)t->n_models++;
}

int ipr_declog_read(const char *path, struct ipr_declog_table **out)
{
    *out = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct ipr_declog_table *t = calloc(1, sizeof *t);
    cJSON **preds = NULL, **costs = NULL;
    char **chosen_names = NULL;
    size_t cap = 0;
    int rc = IPR_OK;
    if (!t)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = db_fail(db, path, "cannot open the decision log");
        goto out;
    }
    if (sqlite3_prepare_v2(db, "SELECT id, router, tau, model, expected_cost, quality, predictions, costs"
                               " FROM decisions ORDER BY rowid", -1, &st, NULL) != SQLITE_OK) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: not a decision log: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (t->n == cap) {
            cap = cap ? cap * 2 : 256;
#define GROW(p) do { void *q_ = realloc((p), cap * sizeof *(p)); if (!q_) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; } (p) = q_; } while (0)
            GROW(t->ids); GROW(t->routers); GROW(t->tau); GROW(t->chosen); GROW(t->expected_cost);
            GROW(t->quality); GROW(preds); GROW(costs); GROW(chosen_names);
#undef GROW
        }
        size_t i = t->n;
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *router = (const char *)sqlite3_column_text(st, 1);
        const char *model = (const char *)sqlite3_column_text(st, 3);
        const char *pj = (const char *)sqlite3_column_text(st, 6);
        const char *cj = (const char *)sqlite3_column_text(st, 7);
        t->ids[i] = strdup(id ? id : "");
        t->routers[i] = strdup(router ? router : "");
        chosen_names[i] = strdup(model ? model : "");
        preds[i] = pj ? cJSON_Parse(pj) : NULL;
        costs[i] = cj ? cJSON_Parse(cj) : NULL;
        t->n++;
        if (!t->ids[i] || !t->routers[i] || !chosen_names[i]) {
            rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
            goto out;
        }
        t->tau[i] = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
        t->expected_cost[i] = sqlite3_column_type(st, 4) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 4);
        t->quality[i] = sqlite3_column_type(st, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 5);
        const cJSON *e;
        cJSON_ArrayForEach(e, preds[i])
            if (e->string && model_index(t, e->string, 1) == -2) {
                rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
                goto out;
            }
    }
    if (s != SQLITE_DONE) {
        rc = ipr_error_set(IPR_ERR_IO, "%s: read error: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    size_t nm = t->n_models ? t->n_models : 1;
    t->pred = malloc(t->n * nm * sizeof *t->pred + 1);
    t->cost = malloc(t->n * nm * sizeof *t->cost + 1);
    if (!t->pred || !t->cost) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n; i++) {
        for (size_t m = 0; m < t->n_models; m++)
            t->pred[i * t->n_models + m] = t->cost[i * t->n_models + m] = NAN;
        const cJSON *e;
        cJSON_ArrayForEach(e, preds[i]) {
            int m = e->string ? model_index(t, e->string, 0) : -1;
            if (m >= 0 && cJSON_IsNumber(e))
                t->pred[i * t->n_models + (size_t)m] = e->valuedouble;
        }
        cJSON_ArrayForEach(e, costs[i]) {
            int m = e->string ? model_index(t, e->string, 0) : -1;
            if (m >= 0 && cJSON_IsNumber(e))
                t->cost[i * t->n_models + (size_t)m] = e->valuedouble;
        }
        t->chosen[i] = model_index(t, chosen_names[i], 0);
    }
out:
    for (size_t i = 0; i < t->n; i++) {
        if (preds) cJSON_Delete(preds[i]);
        if (costs) cJSON_Delete(costs[i]);
        if (chosen_names) free(chosen_names[i]);
    }
    free(preds);
    free(costs);
    free(chosen_names);
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc) {
        /* t->n rows are fully allocated in ids/routers; others freed by table_free */
        ipr_declog_table_free(t);
        return rc;
    }
    *out = t;
    return IPR_OK;
}
