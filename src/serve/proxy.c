/*
 * proxy.c — the upstream side of the gateway: one thread drives every
 * upstream call through a libcurl multi handle, so a thousand streaming
 * completions cost a thousand sockets, not a thousand threads.
 *
 * Flow of a job (one chat completion): the HTTP thread routes, suspends the
 * client connection and submits the job. This thread starts the attempt on
 * the chosen model's upstream. The first body bytes with a status below 500
 * (and not 429) commit the job: for a stream the client connection is resumed
 * at once and every server-sent event is passed on as it arrives (its "model"
 * field rewritten to the registry name of the model that answered); a plain
 * response is buffered, then handed over whole. An upstream error, a
 * connection failure or a timeout before commit retries once on the
 * registry's fallback model; after that, or after a stream committed, the
 * error goes to the client (a 502/504 JSON error, or a stream cut short).
 *
 * Timeouts are checked here every 50 ms rather than by curl alone, so they can
 * distinguish time to first byte from silence in the middle of a stream.
 * Backpressure: a stream whose client reads slowly pauses its transfer once
 * 4 MB wait, and resumes when the client has drained below 1 MB.
 */
#include "serve/serve_int.h"
#include "ipr/err.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUT_HIGH (4u << 20)
#define OUT_LOW (1u << 20)
#define PLAIN_MAX (64u << 20)
#define SSE_MAX (1u << 20)

struct proxy {
    const struct ipr_serve_limits *lim;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    struct job **incoming, **unpause;
    size_t n_in, cap_in, n_un, cap_un;
    int stop;
    atomic_int cancel;
    /* owned by the proxy thread */
    struct job **active;
    size_t n_active, cap_active;
};

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void job_release(struct job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    rinst_release(j->ri);
    cJSON_Delete(j->body);
    free(j->post);
    curl_slist_free_all(j->hdrs);
    free(j->out);
    free(j->sse);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

void job_wake_locked(struct job *j)
{
    if (j->suspended) {
        j->suspended = 0;
        MHD_resume_connection(j->conn);
    }
}

static int push(struct job ***v, size_t *n, size_t *cap, struct job *j)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void *p = realloc(*v, c * sizeof **v);
        if (!p)
            return -1;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = j;
    return 0;
}

/* Makes *buf hold at least need bytes, doubling from first; 0 or -1 (NOMEM). */
static int grow(char **buf, size_t *cap, size_t need, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    char *q = realloc(*buf, c);
    if (!q)
        return -1;
    *buf = q;
    *cap = c;
    return 0;
}

static int out_append(struct job *j, const char *p, size_t n)
{
    if (j->out_pos == j->out_len)
        j->out_pos = j->out_len = 0;
    if (j->out_len + n > j->out_cap) {
        if (j->out_pos > 0) {
            memmove(j->out, j->out + j->out_pos, j->out_len - j->out_pos);
            j->out_len -= j->out_pos;
            j->out_pos = 0;
        }
        if (grow(&j->out, &j->out_cap, j->out_len + n, 16384) != 0)
            return -1;
    }
    memcpy(j->out + j->out_len, p, n);
    j->out_len += n;
    return 0;
}

static const char *answer_name(const struct job *j)
{
    return ipr_router_registry(j->ri->router)->models[j->model].name;
}

/* One server-sent event (without its blank-line terminator) to the client,
 * with "model" in each JSON data line set to the answering model's name. */
static int sse_event(struct job *j, const char *ev, size_t len)
{
    const char *p = ev, *end = ev + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int done = 0;
        if (ll > 6 && memcmp(p, "data:", 5) == 0) {
            const char *js = p + 5;
            while (js < p + ll && *js == ' ')
                js++;
            if (js < p + ll && *js == '{') {
                cJSON *o = cJSON_ParseWithLength(js, (size_t)(p + ll - js));
                if (cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, "model")) {
                    cJSON_ReplaceItemInObjectCaseSensitive(o, "model", cJSON_CreateString(answer_name(j)));
                    char *s = cJSON_PrintUnformatted(o);
                    if (s) {
                        if (out_append(j, "data: ", 6) || out_append(j, s, strlen(s)) || out_append(j, "\n", 1)) {
                            free(s);
                            cJSON_Delete(o);
                            return -1;
                        }
                        free(s);
                        done = 1;
                    }
                }
                cJSON_Delete(o);
            }
        }
        if (!done && (out_append(j, p, ll) || out_append(j, "\n", 1)))
            return -1;
        p += ll + (nl ? 1 : 0);
    }
    return out_append(j, "\n", 1);
}

static int sse_feed(struct job *j, const char *data, size_t n)
{
    if (grow(&j->sse, &j->sse_cap, j->sse_len + n, 4096) != 0)
        return -1;
    memcpy(j->sse + j->sse_len, data, n);
    j->sse_len += n;
    size_t start = 0;
    for (;;) {
        char *sep = memmem(j->sse + start, j->sse_len - start, "\n\n", 2);
        if (!sep)
            break;
        size_t elen = (size_t)(sep - (j->sse + start));
        /* tolerate CRLF line ends */
        char *ev = j->sse + start;
        for (size_t k = 0; k < elen; k++)
            if (ev[k] == '\r')
                ev[k] = '\n';
        if (sse_event(j, ev, elen))
            return -1;
        start += elen + 2;
    }
    if (start) {
        memmove(j->sse, j->sse + start, j->sse_len - start);
        j->sse_len -= start;
    }
    if (j->sse_len > SSE_MAX) { /* not SSE after all: pass it on as is */
        if (out_append(j, j->sse, j->sse_len))
            return -1;
        j->sse_len = 0;
    }
    return 0;
}

static int retryable(long code)
{
    return code >= 500 || code == 429 || code == 408;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct job *j = arg;
    size_t n = size * nmemb;
    if (atomic_load_explicit(&j->cancelled, memory_order_relaxed))
        return 0;
    j->t_last = serve_now();
    j->got_bytes = 1;
    pthread_mutex_lock(&j->mu);
    if (j->cancelled) {
        pthread_mutex_unlock(&j->mu);
        return 0;
    }
    if (j->state == JOB_PENDING) {
        long code = 0;
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
        j->up_status = code;
        if (retryable(code)) {
            pthread_mutex_unlock(&j->mu);
            return 0; /* abort; the completion handler falls back */
        }
        const char *ct = NULL;
        curl_easy_getinfo(j->easy, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(j->content_type, sizeof j->content_type, "%s", ct ? ct : "application/json");
        j->status = code;
        j->state = JOB_COMMITTED;
    }
    int is_sse = j->stream && strncmp(j->content_type, "text/event-stream", 17) == 0;
    if (is_sse && j->out_len - j->out_pos > OUT_HIGH) {
        if (!j->paused)
            atomic_fetch_add_explicit(&j->ri->rm->upstream_pauses, 1, memory_order_relaxed);
        j->paused = 1;
        pthread_mutex_unlock(&j->mu);
        return CURL_WRITEFUNC_PAUSE;
    }
    int rc;
    if (is_sse)
        rc = sse_feed(j, data, n);
    else if (j->out_len + n > PLAIN_MAX)
        rc = -1;
    else
        rc = out_append(j, data, n);
    if (rc == 0 && j->stream)
        job_wake_locked(j);
    pthread_mutex_unlock(&j->mu);
    return rc ? 0 : n;
}

static int start_attempt(struct proxy *p, struct job *j)
{
    const struct upstream_ep *ep = &j->ri->ups[j->model];
    if (!ep->ok)
        return -1;
    cJSON_ReplaceItemInObjectCaseSensitive(j->body, "model", cJSON_CreateString(ep->model));
    free(j->post);
    curl_slist_free_all(j->hdrs);
    j->hdrs = NULL;
    j->post = cJSON_PrintUnformatted(j->body);
    j->hdrs = curl_slist_append(j->hdrs, "Content-Type: application/json");
    if (j->hdrs && j->stream)
        j->hdrs = curl_slist_append(j->hdrs, "Accept: text/event-stream");
    if (j->hdrs && ep->auth)
        j->hdrs = curl_slist_append(j->hdrs, ep->auth);
    CURL *e = curl_easy_init();
    if (!e || !j->post || !j->hdrs) {
        if (e)
            curl_easy_cleanup(e);
        return -1;
    }
    const struct ipr_serve_limits *l = p->lim;
    curl_easy_setopt(e, CURLOPT_URL, ep->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->post);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->post));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(l->upstream_connect_s * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(l->upstream_total_s * 1000));
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    j->easy = e;
    j->t_start = j->t_last = serve_now();
    j->got_bytes = 0;
    j->up_status = 0;
    if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        j->easy = NULL;
        return -1;
    }
    return 0;
}

static void remove_active(struct proxy *p, struct job *j)
{
    for (size_t i = 0; i < p->n_active; i++)
        if (p->active[i] == j) {
            p->active[i] = p->active[--p->n_active];
            return;
        }
}

/* Starts the fallback attempt, or fails the job. Called without j->mu. */
static void fail_or_fallback(struct proxy *p, struct job *j, long status, const char *why)
{
    pthread_mutex_lock(&j->mu);
    int fb = j->ri->fallback;
    int can = j->attempt == 0 && fb >= 0 && fb != j->model && j->ri->ups[fb].ok && !j->cancelled;
    if (can) {
        j->attempt = 1;
        j->model = fb;
        j->fallback_used = 1;
        snprintf(j->err, sizeof j->err, "%s", why);
        j->out_len = j->out_pos = 0;
        j->sse_len = 0;
        j->state = JOB_PENDING;
        atomic_fetch_add_explicit(&j->ri->rm->upstream_fallbacks, 1, memory_order_relaxed);
        pthread_mutex_unlock(&j->mu);
        if (start_attempt(p, j) == 0)
            return;
        pthread_mutex_lock(&j->mu);
        why = "the fallback model has no usable upstream";
    }
    j->state = JOB_FAILED;
    j->status = status;
    if (j->fallback_used && j->err[0]) {
        char first[256];
        snprintf(first, sizeof first, "%s", j->err);
        snprintf(j->err, sizeof j->err, "%.120s; fallback: %.120s", first, why);
    } else {
        snprintf(j->err, sizeof j->err, "%s", why);
    }
    j->done = 1;
    job_wake_locked(j);
    pthread_mutex_unlock(&j->mu);
    remove_active(p, j);
    job_release(j);
}

/* The current attempt ended (result from curl, or our own timeout). */
static void finish_attempt(struct proxy *p, struct job *j, CURLcode result, int timed_out)
{
    CURL *e = j->easy;
    long code = j->up_status;
    if (!code)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(p->multi, e);
    curl_easy_cleanup(e);
    j->easy = NULL;
    double secs = serve_now() - j->t_start;
    if (result == CURLE_OPERATION_TIMEDOUT)
        timed_out = 1;

    pthread_mutex_lock(&j->mu);
    int committed = j->state == JOB_COMMITTED;
    int ok = result == CURLE_OK && !timed_out;
    if (!committed && ok && !retryable(code) && code > 0) {
        /* an answer without a body (or the write callback never ran) */
        j->state = JOB_COMMITTED;
        j->status = code;
        committed = 1;
        const char *ct = "application/json";
        snprintf(j->content_type, sizeof j->content_type, "%s", ct);
    }
    metrics_upstream(j->ri->rm, j->ri->midx[j->model], secs, !(committed && ok));
    j->upstream_ms += secs * 1000;
    if (committed && (ok || j->stream)) {
        if (j->stream && j->sse_len) {
            sse_event(j, j->sse, j->sse_len); /* a last event without its blank line */
            j->sse_len = 0;
        }
        j->stream_error = !ok;
        j->done = 1;
        job_wake_locked(j);
        pthread_mutex_unlock(&j->mu);
        remove_active(p, j);
        job_release(j);
        return;
    }
    int cancelled = j->cancelled;
    j->state = JOB_PENDING;
    pthread_mutex_unlock(&j->mu);
    if (cancelled) {
        pthread_mutex_lock(&j->mu);
        j->state = JOB_FAILED;
        j->status = 503;
        snprintf(j->err, sizeof j->err, "cancelled: the server is shutting down or the client left");
        j->done = 1;
        job_wake_locked(j); /* a drain cancels: the client gets the error */
        pthread_mutex_unlock(&j->mu);
        remove_active(p, j);
        job_release(j);
        return;
    }
    char why[200];
    long status = 502;
    if (timed_out) {
        snprintf(why, sizeof why, "upstream for '%s' timed out after %.1f s", answer_name(j), secs);
        status = 504;
    } else if (result == CURLE_OK || (result == CURLE_WRITE_ERROR && retryable(code))) {
        snprintf(why, sizeof why, "upstream for '%s' returned HTTP %ld", answer_name(j), code);
    } else {
        snprintf(why, sizeof why, "upstream for '%s' failed: %s", answer_name(j), curl_easy_strerror(result));
    }
    fail_or_fallback(p, j, status, why);
}

static void check_timeouts(struct proxy *p)
{
    double now = serve_now();
    const struct ipr_serve_limits *l = p->lim;
    for (size_t i = 0; i < p->n_active;) {
        struct job *j = p->active[i];
        int cancel = atomic_load_explicit(&j->cancelled, memory_order_relaxed) || p->cancel;
        int late = j->got_bytes ? now - j->t_last > l->upstream_idle_s : now - j->t_start > l->upstream_first_byte_s;
        if (late && !cancel && j->got_bytes) {
            /* a transfer we paused for a slow client is not a silent upstream */
            pthread_mutex_lock(&j->mu);
            int paused = j->paused;
            pthread_mutex_unlock(&j->mu);
            if (paused) {
                j->t_last = now;
                late = 0;
            }
        }
        if (j->easy && (cancel || late)) {
            if (cancel) {
                pthread_mutex_lock(&j->mu);
                j->cancelled = 1;
                pthread_mutex_unlock(&j->mu);
            }
            size_t before = p->n_active;
            finish_attempt(p, j, CURLE_OPERATION_TIMEDOUT, 1);
            if (p->n_active < before)
                continue; /* removed: the slot now holds another job */
        }
        i++;
    }
}

/* Ends a job that could not be queued (no memory): 503, waiter woken, the
 * queue's reference dropped. */
static void fail_nomem(struct job *j)
{
    pthread_mutex_lock(&j->mu);
    j->state = JOB_FAILED;
    j->status = 503;
    snprintf(j->err, sizeof j->err, "out of memory");
    j->done = 1;
    job_wake_locked(j);
    pthread_mutex_unlock(&j->mu);
    job_release(j);
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        struct job **in = p->incoming, **un = p->unpause;
        size_t n_in = p->n_in, n_un = p->n_un;
        p->incoming = p->unpause = NULL;
        p->n_in = p->cap_in = p->n_un = p->cap_un = 0;
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);

        for (size_t i = 0; i < n_in; i++) {
            struct job *j = in[i];
            if (push(&p->active, &p->n_active, &p->cap_active, j) != 0) {
                fail_nomem(j);
                continue;
            }
            if (start_attempt(p, j) != 0) {
                char why[200];
                snprintf(why, sizeof why, "model '%s' has no usable upstream", answer_name(j));
                fail_or_fallback(p, j, 502, why);
            }
        }
        free(in);
        for (size_t i = 0; i < n_un; i++) {
            struct job *j = un[i];
            pthread_mutex_lock(&j->mu);
            int was = j->paused;
            j->paused = 0;
            j->unpause_req = 0;
            pthread_mutex_unlock(&j->mu);
            if (was && j->easy)
                curl_easy_pause(j->easy, CURLPAUSE_CONT);
            job_release(j);
        }
        free(un);
        if (stop && p->n_active == 0)
            break;

        int running = 0;
        curl_multi_perform(p->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(p->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct job *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            if (j && j->easy == msg->easy_handle)
                finish_attempt(p, j, msg->data.result, 0);
        }
        check_timeouts(p);
        curl_multi_poll(p->multi, NULL, 0, 50, NULL);
    }
    return NULL;
}

int proxy_start(const struct ipr_serve_limits *lim, struct proxy **out)
{
    *out = NULL;
    struct proxy *p = calloc(1, sizeof *p);
    if (!p)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    p->lim = lim;
    p->multi = curl_multi_init();
    if (!p->multi) {
        free(p);
        return ipr_error_set(IPR_ERR_NOMEM, "curl_multi_init failed");
    }
    curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        curl_multi_cleanup(p->multi);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return ipr_error_set(IPR_ERR_NOMEM, "cannot start the proxy thread");
    }
    *out = p;
    return IPR_OK;
}

void proxy_submit(struct proxy *p, struct job *j)
{
    atomic_fetch_add(&j->refs, 1);
    pthread_mutex_lock(&p->mu);
    int bad = push(&p->incoming, &p->n_in, &p->cap_in, j);
    pthread_mutex_unlock(&p->mu);
    if (bad) {
        fail_nomem(j);
        return;
    }
    curl_multi_wakeup(p->multi);
}

void proxy_unpause(struct proxy *p, struct job *j)
{
    atomic_fetch_add(&j->refs, 1);
    pthread_mutex_lock(&p->mu);
    int bad = push(&p->unpause, &p->n_un, &p->cap_un, j);
    pthread_mutex_unlock(&p->mu);
    if (bad)
        job_release(j);
    curl_multi_wakeup(p->multi);
}

void proxy_cancel_all(struct proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->cancel = 1;
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
}

void proxy_stop(struct proxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    p->cancel = 1;
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
    pthread_join(p->thread, NULL);
    curl_multi_cleanup(p->multi);
    pthread_mutex_destroy(&p->mu);
    free(p->active);
    free(p);
}
