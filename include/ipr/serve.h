/*
 * serve.h — the routing server and OpenAI-compatible gateway (DESIGN.md §6).
 *
 * Four parts, usable on their own:
 *  - request parsing (ipr_serve_parse_*): a request body (untrusted bytes) into a
 *    routing request. Pure functions, no I/O, fuzzed by tests/fuzz/fuzz_request.c.
 *  - configuration (ipr_serve_config_*): the JSON file of `ipr serve --config`.
 *  - the decision log (ipr_declog_*): every decision in an embedded SQLite
 *    database (WAL), written in batches by a writer thread off the request
 *    path; ipr_declog_read() loads a log back into arrays for `ipr eval --log`.
 *  - the server (ipr_server_*): libmicrohttpd front end, libcurl multi back end.
 *
 * Ownership: every struct filled by an ipr_serve_parse_* / *_read / *_parse call
 * owns what it points to and is released by the matching *_free. Functions
 * return IPR_OK or a negative enum ipr_err with the message in
 * ipr_error_message().
 */
#ifndef IPR_SERVE_H
#define IPR_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "ipr/router.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- requests */

enum ipr_serve_kind {
    IPR_SERVE_ROUTE = 0, /* POST /v1/route */
    IPR_SERVE_CHAT = 1,  /* POST /v1/chat/completions */
};

#ifndef IPR_SERVE_NAME_MAX
#define IPR_SERVE_NAME_MAX 64
#endif

/* A parsed request. Strings point into the parsed JSON tree (json) or into
 * text_owned; both live until ipr_serve_request_free. */
struct ipr_serve_request {
    void *json;                 /* the body as a cJSON tree (owned) */
    const char *text;           /* the text routed on */
    size_t text_len;
    char *text_owned;           /* set when text was assembled from message parts */
    char router[IPR_SERVE_NAME_MAX]; /* router name, "" = the default router */
    int has_tau;
    double tau;
    int rule;                   /* enum ipr_rule, -1 = the router's default */
    int has_delta;
    double delta;
    const char *models[IPR_MAX_MODELS]; /* allowed models (n_models, 0 = all) */
    size_t n_models;
    const char *family;         /* allowed family or NULL */
    int explain;
    int stream;                 /* chat: "stream": true */
    /* On failure: the HTTP status (400, 404, 413...) and an OpenAI-style
     * error type and message for the JSON error body. */
    int status;
    const char *err_type;
    char err[256];
};

/* Parses a request body of `kind`. Routed text: "prompt" (route only) or, for
 * "messages", the content of the LAST user turn (string, or the text parts of
 * an array joined by "\n"); system and earlier turns are not routed on (see
 * docs/serving.md). Chat requests name the router in "model": "ipr",
 * "ipr:tau=0.3", "<router>:tau=0.3,rule=dynmax,delta=0.01,family=F"; an
 * optional "ipr": {"models", "family", "tau", "rule", "delta"} object narrows
 * the candidates and is removed before forwarding. Rejects invalid UTF-8,
 * non-object bodies, wrong types and out-of-range values (req->status 400).
 * Returns IPR_OK or IPR_ERR_FORMAT/INVAL/NOTFOUND with req->status/err set;
 * free req in either case. */
int ipr_serve_parse_request(enum ipr_serve_kind kind, const char *body, size_t len,
                            struct ipr_serve_request *req);
void ipr_serve_request_free(struct ipr_serve_request *req);

/* Parses a chat "model" string "NAME[:k=v,k=v]" into req (router, tau, rule,
 * delta, family). IPR_ERR_INVAL with req->err on a bad option. */
int ipr_serve_parse_model_spec(const char *spec, struct ipr_serve_request *req);

/* POST /v1/feedback {"id": "...", "quality": q in [0,1]}. id is copied into
 * id (cap bytes). IPR_ERR_FORMAT/INVAL with err (errcap bytes) on bad input. */
int ipr_serve_parse_feedback(const char *body, size_t len, char *id, size_t cap,
                             double *quality, char *err, size_t errcap);

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF), else 0. */
int ipr_utf8_valid(const char *s, size_t len);

/* ------------------------------------------------------------ configuration */

struct ipr_serve_limits {
    size_t max_body;            /* request body bytes (413 above) */
    size_t max_header;          /* request header bytes (431 above; MHD's pool is this + 8 KiB) */
    unsigned client_timeout_s;  /* idle client connection, incl. half-sent requests */
    unsigned max_connections;   /* open client connections */
    unsigned max_inflight;      /* requests being handled at once (503 above) */
    unsigned threads;           /* HTTP worker threads, 0 = number of cores */
    double upstream_connect_s;  /* connecting to an upstream */
    double upstream_first_byte_s; /* upstream headers (time to first byte) */
    double upstream_idle_s;     /* silence between upstream bytes once streaming */
    double upstream_total_s;    /* whole upstream call */
    double drain_s;             /* SIGTERM: how long in-flight requests may finish */
};

struct ipr_serve_router_cfg {
    char *name;
    char *bundle;
    char *encoder;              /* NULL = the default encoder path */
    int has_tau;
    double tau;                 /* default tau for requests that give none */
    int rule;                   /* enum ipr_rule or -1 = the bundle's default */
    double delta;
    char *strongest;            /* reference model for the saving metric, NULL = priciest */
};

struct ipr_serve_upstream_cfg {
    char *model;                /* registry model name this overrides */
    char *base_url;
    char *api_key_env;          /* NULL = no key */
    char *upstream_model;       /* NULL = the registry name */
};

struct ipr_serve_config {
    char *host;
    int port;
    struct ipr_serve_router_cfg *routers;
    size_t n_routers;
    char *default_router;       /* name; the first router when NULL */
    struct ipr_serve_upstream_cfg *upstreams;
    size_t n_upstreams;
    char **keys;                /* client bearer keys; none = no auth */
    size_t n_keys;
    struct ipr_serve_limits limits;
    char *log_path;             /* SQLite decision log, NULL = no log */
    unsigned log_batch;         /* records per transaction at most */
    double log_flush_s;         /* longest a record waits before commit */
    int insecure;               /* allow a non-loopback bind without keys */
};

/* Fills cfg with the defaults (127.0.0.1:8080, no routers, limits below). */
void ipr_serve_config_defaults(struct ipr_serve_config *cfg);
/* Parses a config file's JSON over the defaults already in cfg. what names the
 * source in errors. */
int  ipr_serve_config_parse(const char *json, size_t len, const char *what, struct ipr_serve_config *cfg);
int  ipr_serve_config_read(const char *path, struct ipr_serve_config *cfg);
/* Adds or replaces a router (strings copied). */
int  ipr_serve_config_add_router(struct ipr_serve_config *cfg, const char *name, const char *bundle,
                                 const char *encoder);
/* Checks consistency (routers present, unique names, loopback or keys unless
 * insecure). */
int  ipr_serve_config_check(const struct ipr_serve_config *cfg);
void ipr_serve_config_free(struct ipr_serve_config *cfg);
/* 1 when host is a loopback address ("127.x.y.z", "::1", "localhost"). */
int  ipr_serve_host_is_loopback(const char *host);

/* ------------------------------------------------------------ decision log */

/* One decision, written as one row of table `decisions`:
 *   id TEXT PRIMARY KEY, ts REAL (unix seconds), endpoint TEXT ("route"|"chat"),
 *   router TEXT, tau REAL, rule TEXT, model TEXT (the router's choice),
 *   answered TEXT (the model that answered, chat only), threshold REAL,
 *   expected_cost REAL, fallback_used INT (QE fallback), upstream_fallback INT,
 *   upstream_status INT, latency_us REAL (decision), upstream_ms REAL,
 *   predictions TEXT (JSON {model: r}), costs TEXT (JSON {model: usd}),
 *   quality REAL (feedback, NULL until given), feedback_ts REAL. */
struct ipr_declog_record {
    char id[48];
    double ts;
    char endpoint[8];
    char router[IPR_SERVE_NAME_MAX];
    double tau;
    char rule[16];
    char model[128];
    char answered[128];
    double threshold;
    double expected_cost;
    int fallback_used;
    int upstream_fallback;
    int upstream_status;
    double latency_us;
    double upstream_ms;
    char *predictions;          /* malloc'd JSON; the log takes ownership */
    char *costs;                /* malloc'd JSON; the log takes ownership */
};

struct ipr_declog;

/* Opens (creating) the database at path in WAL mode and starts the writer
 * thread; a batch is committed when `batch` records wait or the oldest has
 * waited flush_s seconds. */
int  ipr_declog_open(const char *path, unsigned batch, double flush_s, struct ipr_declog **out);
/* Queues a record (never blocks on disk). Takes ownership of rec->predictions
 * and rec->costs, also on failure. IPR_ERR_LIMIT when the queue is full (the
 * record is dropped and counted). */
int  ipr_declog_append(struct ipr_declog *log, struct ipr_declog_record *rec);
/* Attaches an observed quality to a logged decision, after the records queued
 * before it are committed. Waits for the writer. IPR_ERR_NOTFOUND for an
 * unknown id. */
int  ipr_declog_feedback(struct ipr_declog *log, const char *id, double quality);
/* Commits everything queued so far and waits for it. */
int  ipr_declog_flush(struct ipr_declog *log);
/* Counters for /metrics. */
void ipr_declog_stats(struct ipr_declog *log, uint64_t *written, uint64_t *dropped, uint64_t *batches);
/* Flushes, stops the writer and closes the database. NULL is fine. */
void ipr_declog_close(struct ipr_declog *log);

/* The log as arrays, for replay (`ipr eval --log`). Rows in insertion order;
 * models are the union of the models in the rows' predictions, in order of
 * first appearance. */
struct ipr_declog_table {
    size_t n;              /* decisions */
    size_t n_models;
    char **models;         /* (n_models) */
    char **ids;            /* (n) request ids */
    char **routers;        /* (n) router names */
    double *tau;           /* (n) */
    double *pred;          /* (n, n_models) predicted quality, NaN = absent */
    double *cost;          /* (n, n_models) expected cost, NaN = absent */
    int *chosen;           /* (n) index into models of the router's choice, -1 */
    double *expected_cost; /* (n) of the choice */
    double *quality;       /* (n) observed quality from feedback, NaN = none */
};
int  ipr_declog_read(const char *path, struct ipr_declog_table **out);
void ipr_declog_table_free(struct ipr_declog_table *t);

/* What a log supports without labels for the models not called (replay.c):
 * the served point (mean expected cost, shares, mean observed quality over
 * the decisions with feedback), calibration of the chosen model's prediction
 * against feedback, and the logged predictions re-routed by `rule` at each of
 * taus (mean expected cost and predicted quality of the choice, shares,
 * agreement with the logged choice, observed quality where they agree).
 * Returns a malloc'd JSON document, NULL on NOMEM. */
char *ipr_declog_replay_json(const struct ipr_declog_table *t, enum ipr_rule rule, double delta,
                             const double *taus, size_t n_taus);

/* ------------------------------------------------------------------ server */

struct ipr_server;

/* Opens every router bundle, the log, and starts listening. The config is
 * copied. */
int  ipr_server_start(const struct ipr_serve_config *cfg, struct ipr_server **out);
/* The port actually bound (useful with port 0). */
int  ipr_server_port(const struct ipr_server *s);
/* Re-opens every router bundle; requests in flight finish on the old ones.
 * A bundle that fails to open keeps its previous version (error returned). */
int  ipr_server_reload(struct ipr_server *s);
/* Stops accepting, waits up to drain_s for in-flight requests, flushes the log
 * and frees everything. */
void ipr_server_stop(struct ipr_server *s);

#ifdef __cplusplus
}
#endif
#endif
