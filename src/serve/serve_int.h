/*
 * serve_int.h — what the server's parts share (not a public header):
 * server.c (libmicrohttpd front end, routers, reload, drain), proxy.c (libcurl
 * multi thread that talks to upstreams) and metrics.c (Prometheus counters).
 *
 * Lifetimes: a struct rinst is one loaded version of a router bundle,
 * reference-counted; every request holds a reference from routing to
 * completion, so SIGHUP can swap in a new version while old requests finish on
 * the old one. A struct job is one proxied chat completion, shared by the HTTP
 * thread that serves the client and the proxy thread; it is freed when both
 * have let go (refs).
 */
#ifndef IPR_SERVE_INT_H
#define IPR_SERVE_INT_H

#include "ipr/serve.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---------------------------------------------------------------- metrics */

#define LAT_BUCKETS 12   /* decision latency, microseconds */
#define UP_BUCKETS 14    /* upstream latency, seconds */

struct model_metrics {
    char name[128];
    atomic_uint_fast64_t decisions;
    atomic_uint_fast64_t upstream_requests;
    atomic_uint_fast64_t upstream_errors;
    atomic_uint_fast64_t answered;
    atomic_uint_fast64_t up_hist[UP_BUCKETS + 1];
    atomic_uint_fast64_t up_sum_us;
};

struct router_metrics {
    struct model_metrics models[IPR_MAX_MODELS];
    atomic_int n_models;               /* grows only, under the server's swap lock */
    atomic_uint_fast64_t lat_hist[LAT_BUCKETS + 1];
    atomic_uint_fast64_t lat_sum_ns;
    atomic_uint_fast64_t decisions;
    atomic_uint_fast64_t qe_fallbacks;     /* QE could not run: registry fallback used */
    atomic_uint_fast64_t upstream_fallbacks;
    atomic_uint_fast64_t upstream_pauses;  /* streams paused for a slow client */
    atomic_uint_fast64_t spend_pusd;       /* expected spend, 1e-12 USD */
    atomic_uint_fast64_t strongest_pusd;   /* what always-the-strongest would have cost */
};

extern const double metrics_lat_bounds_us[LAT_BUCKETS];
extern const double metrics_up_bounds_s[UP_BUCKETS];

int  metrics_model_index(struct router_metrics *rm, const char *name); /* adds; -1 when full */
void metrics_decision(struct router_metrics *rm, int midx, double latency_us, double cost,
                      double strongest_cost, int qe_fallback);
void metrics_upstream(struct router_metrics *rm, int midx, double seconds, int error);

/* ----------------------------------------------------------------- routers */

struct upstream_ep {
    int ok;                    /* 1 when the model has an upstream */
    char *url;                 /* base_url + "/chat/completions" */
    char *auth;                /* "Authorization: Bearer ..." or NULL (never logged) */
    char *model;               /* model id sent upstream */
};

struct rinst {
    atomic_int refs;
    struct ipr_router *router;
    const struct ipr_serve_router_cfg *cfg;
    size_t n;                            /* registry models */
    int midx[IPR_MAX_MODELS];            /* registry index -> metrics index */
    struct upstream_ep ups[IPR_MAX_MODELS];
    int fallback;                        /* registry index or -1 */
    int strongest;                       /* registry index for the saving metric */
    struct router_metrics *rm;           /* the slot's metrics (outlives versions) */
    pthread_mutex_t pool_mu;
    struct ctx_node *pool;               /* idle per-thread router contexts */
};

/* Drops a reference; the last one closes the router and frees the version. */
void rinst_release(struct rinst *ri);

/* ------------------------------------------------------------------- jobs */

enum job_state {
    JOB_PENDING = 0,   /* waiting for the upstream's status line */
    JOB_COMMITTED,     /* upstream answered (status < 500); bytes flow to the client */
    JOB_FAILED,        /* no usable answer from any attempt: an error goes to the client */
};

struct job {
    atomic_int refs;
    pthread_mutex_t mu;
    struct proxy *proxy;
    struct MHD_Connection *conn;
    struct rinst *ri;            /* the job's own reference (released with the job) */
    int stream;
    int model;                   /* registry index currently tried */
    int attempt;                 /* 0 = the choice, 1 = the fallback */
    cJSON *body;                 /* the request to forward (model replaced per attempt) */
    /* proxy-thread state */
    void *easy;                  /* CURL * of the current attempt */
    struct curl_slist *hdrs;
    char *post;                  /* serialised body of the current attempt */
    double t_start, t_last;      /* monotonic: attempt start, last byte */
    int got_bytes;
    long up_status;
    char content_type[128];
    int paused;                  /* transfer paused: the client is slow */
    int unpause_req;             /* the client drained: resume requested */
    /* shared state, under mu */
    enum job_state state;
    int done;                    /* upstream finished (ok or error) */
    int stream_error;            /* the upstream broke after committing */
    int suspended;               /* the client connection is suspended */
    atomic_int cancelled;        /* the client went away */
    int fallback_used;           /* the answer came from the fallback model */
    long status;                 /* HTTP status to send */
    char err[256];               /* error message when JOB_FAILED */
    char *out;                   /* bytes for the client */
    size_t out_len, out_cap, out_pos;
    char *sse;                   /* stream: partial upstream event */
    size_t sse_len, sse_cap;
    double upstream_ms;
};

struct proxy;
int  proxy_start(const struct ipr_serve_limits *lim, struct proxy **out);
void proxy_submit(struct proxy *p, struct job *j);
void proxy_cancel_all(struct proxy *p);
void proxy_stop(struct proxy *p);

void job_release(struct job *j);
/* Called by the proxy thread with j->mu held when the client should look
 * again (state changed or data arrived). */
void job_wake_locked(struct job *j);

void proxy_unpause(struct proxy *p, struct job *j);

/* Prometheus text for every router's metrics, appended to b (growable). */
struct sbuf { char *p; size_t len, cap; int oom; };
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_put(struct sbuf *b, const char *s, size_t n);   /* bytes, kept NUL-terminated */
void sbuf_str(struct sbuf *b, const char *s);
void sbuf_num(struct sbuf *b, double v);  /* JSON number: 9 decimals in [1e-4, 1), else %.9g; null if not finite */
void metrics_render(struct sbuf *b, const char *const *names, struct router_metrics *const *rms, size_t n_routers);

double serve_now(void);  /* monotonic seconds */

#endif
