/*
 * server.c — `ipr serve`: the HTTP front end on libmicrohttpd (MHD).
 *
 * MHD runs a pool of worker threads, each with its own epoll loop. A routing
 * request (/v1/route) is answered on the worker thread that read it: parse,
 * route (encode + predict + rule, no allocation in the router), reply, queue a
 * log record. A chat completion is routed the same way, then the connection
 * is suspended and the upstream call handed to the proxy thread (proxy.c);
 * the worker is free at once. When the upstream answers, the proxy resumes
 * the connection and MHD pulls the bytes through a content-reader callback,
 * suspending again whenever it has caught up with the upstream. So open
 * streams cost memory and sockets, never threads.
 *
 * Routers are reference-counted versions (struct rinst) in named slots; a
 * request takes a reference for its whole life, and SIGHUP (ipr_server_reload)
 * swaps a slot's version under a mutex, so in-flight requests finish on the
 * old bundle. Stop = quiesce (stop accepting), wait for in-flight requests up
 * to drain_s, cancel what is left, stop MHD, flush the log.
 */
#include "serve/serve_int.h"
#include "ipr/err.h"

#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

struct ctx_node {
    struct ctx_node *next;
    struct ipr_router_ctx *ctx;
};

struct slot {
    const struct ipr_serve_router_cfg *cfg;
    struct rinst *cur;
    struct router_metrics rm;
};

enum endpoint { EP_NONE, EP_ROUTE, EP_CHAT, EP_FEEDBACK, EP_MODELS, EP_HEALTH, EP_METRICS, EP_COUNT };
static const char *const ep_names[EP_COUNT] = { "other", "route", "chat", "feedback", "models", "healthz", "metrics" };

struct ipr_server {
    struct ipr_serve_config cfg;   /* deep copy of the caller's */
    struct MHD_Daemon *mhd;
    struct proxy *proxy;
    struct ipr_declog *log;
    pthread_mutex_t swap_mu;
    struct slot *slots;
    size_t n_slots;
    size_t def_slot;
    int port;
    atomic_int inflight;
    atomic_int draining;
    uint32_t id_prefix;
    atomic_uint_fast64_t id_counter;
    atomic_uint_fast64_t http[EP_COUNT][3]; /* 2xx, 4xx, 5xx */
    atomic_uint_fast64_t reloads, reload_failures;
};

struct conn {
    enum endpoint ep;
    char *body;
    size_t len, cap;
    int too_large;
    int counted;               /* holds an inflight slot */
    struct rinst *ri;
    struct job *job;
    int queued;                /* a response has been queued */
    struct ipr_declog_record rec;
    int has_rec;
    int route_model;           /* router's choice (registry index) */
    int qe_fallback;
    char qe_reason[160];
    double tau;
};

/* ------------------------------------------------------------ versions */

static void rinst_free(struct rinst *ri)
{
    if (!ri)
        return;
    for (struct ctx_node *n = ri->pool, *next; n; n = next) {
        next = n->next;
        ipr_router_ctx_free(n->ctx);
        free(n);
    }
    for (size_t m = 0; m < IPR_MAX_MODELS; m++) {
        free(ri->ups[m].url);
        free(ri->ups[m].auth);
        free(ri->ups[m].model);
    }
    ipr_router_close(ri->router);
    pthread_mutex_destroy(&ri->pool_mu);
    free(ri);
}

void rinst_release(struct rinst *ri)
{
    if (ri && atomic_fetch_sub(&ri->refs, 1) == 1)
        rinst_free(ri);
}

static char *join_url(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    char *s = malloc(bl + strlen(path) + 1);
    if (s) {
        memcpy(s, base, bl);
        strcpy(s + bl, path);
    }
    return s;
}

static int rinst_open(struct ipr_server *s, struct slot *sl, struct rinst **out)
{
    *out = NULL;
    struct rinst *ri = calloc(1, sizeof *ri);
    if (!ri)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&ri->pool_mu, NULL);
    atomic_init(&ri->refs, 1);
    ri->cfg = sl->cfg;
    ri->rm = &sl->rm;
    int rc = ipr_router_open(sl->cfg->bundle, sl->cfg->encoder, &ri->router);
    if (rc) {
        ipr_error_wrap(rc, "router '%s'", sl->cfg->name);
        rinst_free(ri);
        return rc;
    }
    const struct ipr_registry *reg = ipr_router_registry(ri->router);
    ri->n = reg->n;
    if (ri->n > IPR_MAX_MODELS) {
        rinst_free(ri);
        return ipr_error_set(IPR_ERR_LIMIT, "router '%s': more than %d models", sl->cfg->name, IPR_MAX_MODELS);
    }
    ri->fallback = reg->fallback ? ipr_registry_find(reg, reg->fallback) : -1;
    ri->strongest = -1;
    if (sl->cfg->strongest && (ri->strongest = ipr_registry_find(reg, sl->cfg->strongest)) < 0) {
        rinst_free(ri);
        return ipr_error_set(IPR_ERR_NOTFOUND, "router '%s': strongest model '%s' is not in its registry",
                             sl->cfg->name, sl->cfg->strongest);
    }
    double best = -1;
    for (size_t m = 0; m < ri->n && ri->strongest < 0; m++) {
        double c = ipr_registry_expected_cost(reg, m, 1000);
        if (c > best) { best = c; ri->strongest = (int)m; }
    }
    for (size_t m = 0; m < ri->n; m++) {
        const struct ipr_model_info *mi = &reg->models[m];
        const char *base = mi->has_upstream ? mi->upstream.base_url : NULL;
        const char *keyenv = mi->has_upstream ? mi->upstream.api_key_env : NULL;
        const char *umodel = mi->has_upstream && mi->upstream.model ? mi->upstream.model : mi->name;
        for (size_t u = 0; u < s->cfg.n_upstreams; u++) {
            const struct ipr_serve_upstream_cfg *uc = &s->cfg.upstreams[u];
            if (strcmp(uc->model, mi->name) != 0)
                continue;
            base = uc->base_url;
            keyenv = uc->api_key_env;
            umodel = uc->upstream_model ? uc->upstream_model : mi->name;
        }
        pthread_mutex_lock(&s->swap_mu);
        ri->midx[m] = metrics_model_index(&sl->rm, mi->name);
        pthread_mutex_unlock(&s->swap_mu);
        if (!base)
            continue;
        struct upstream_ep *ep = &ri->ups[m];
        ep->url = join_url(base, "/chat/completions");
        ep->model = strdup(umodel);
        if (keyenv) {
            const char *key = getenv(keyenv);
            if (key && *key) {
                size_t l = strlen(key) + 32;
                if ((ep->auth = malloc(l)))
                    snprintf(ep->auth, l, "Authorization: Bearer %s", key);
            } else {
                fprintf(stderr, "ipr serve: warning: router '%s': model '%s': environment variable %s is not set; "
                                "calling its upstream without a key\n", sl->cfg->name, mi->name, keyenv);
            }
        }
        if (!ep->url || !ep->model || (keyenv && getenv(keyenv) && *getenv(keyenv) && !ep->auth)) {
            rinst_free(ri);
            return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        }
        ep->ok = 1;
    }
    *out = ri;
    return IPR_OK;
}

static struct rinst *acquire(struct ipr_server *s, size_t slot)
{
    pthread_mutex_lock(&s->swap_mu);
    struct rinst *ri = s->slots[slot].cur;
    atomic_fetch_add(&ri->refs, 1);
    pthread_mutex_unlock(&s->swap_mu);
    return ri;
}

static struct ipr_router_ctx *ctx_get(struct rinst *ri)
{
    pthread_mutex_lock(&ri->pool_mu);
    struct ctx_node *n = ri->pool;
    if (n)
        ri->pool = n->next;
    pthread_mutex_unlock(&ri->pool_mu);
    if (n) {
        struct ipr_router_ctx *c = n->ctx;
        free(n);
        return c;
    }
    struct ipr_router_ctx *c = NULL;
    if (ipr_router_ctx_new(ri->router, &c) != IPR_OK)
        return NULL;
    return c;
}

static void ctx_put(struct rinst *ri, struct ipr_router_ctx *c)
{
    struct ctx_node *n = malloc(sizeof *n);
    if (!n) {
        ipr_router_ctx_free(c);
        return;
    }
    n->ctx = c;
    pthread_mutex_lock(&ri->pool_mu);
    n->next = ri->pool;
    ri->pool = n;
    pthread_mutex_unlock(&ri->pool_mu);
}

/* ----------------------------------------------------------- responses */

static void count(struct ipr_server *s, enum endpoint ep, unsigned status)
{
    int k = status < 400 ? 0 : status < 500 ? 1 : 2;
    atomic_fetch_add_explicit(&s->http[ep][k], 1, memory_order_relaxed);
}

static enum MHD_Result reply(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs, unsigned status,
                             const char *ctype, char *body, size_t len, const char *const *hdrs)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2)
        MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
    if (atomic_load(&s->draining))
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    if (cs)
        cs->queued = 1;
    count(s, cs ? cs->ep : EP_NONE, status);
    return ret;
}

static enum MHD_Result reply_error(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs,
                                   unsigned status, const char *type, const char *msg, const char *const *hdrs)
{
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    cJSON_AddNumberToObject(e, "code", status);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!body)
        return MHD_NO;
    return reply(s, c, cs, status, "application/json", body, strlen(body), hdrs);
}

/* Header values come from model names and error texts: no control bytes. */
static void header_safe(char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            *v = ' ';
}

/* ------------------------------------------------------------- routing */

static int find_slot(const struct ipr_server *s, const char *name)
{
    if (!name[0])
        return (int)s->def_slot;
    for (size_t i = 0; i < s->n_slots; i++)
        if (strcmp(s->slots[i].cfg->name, name) == 0)
            return (int)i;
    return -1;
}

static void new_id(struct ipr_server *s, char *id, size_t cap)
{
    uint64_t n = atomic_fetch_add(&s->id_counter, 1);
    snprintf(id, cap, "ipr-%08x%010llx", s->id_prefix, (unsigned long long)n);
}

/* Appends s as a JSON string literal. */
static void json_str(struct sbuf *b, const char *s)
{
    sbuf_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s;; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        sbuf_put(b, run, (size_t)(p - run));
        if (!ch)
            break;
        if (ch == '"' || ch == '\\') {
            char esc[2] = { '\\', (char)ch };
            sbuf_put(b, esc, 2);
        } else {
            sbuf_printf(b, "\\u%04x", ch);
        }
        run = p + 1;
    }
    sbuf_put(b, "\"", 1);
}

/* {model: value} over the finite entries, for the log. */
static char *json_map(const struct ipr_registry *reg, const double *v, size_t n)
{
    struct sbuf b = { 0 };
    sbuf_put(&b, "{", 1);
    for (size_t m = 0; m < n; m++) {
        if (!isfinite(v[m]))
            continue;
        if (b.len > 1)
            sbuf_put(&b, ",", 1);
        json_str(&b, reg->models[m].name);
        sbuf_put(&b, ":", 1);
        sbuf_num(&b, v[m]);
    }
    sbuf_put(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Routes req on the connection's router; fills res. Returns 0, or an HTTP
 * status with msg for a bad request. */
static unsigned do_route(struct ipr_server *s, struct conn *cs, struct ipr_serve_request *req,
                         struct ipr_route_request *rq, struct ipr_route_result *res, char *msg, size_t cap)
{
    int slot = find_slot(s, req->router);
    if (slot < 0) {
        snprintf(msg, cap, "unknown router '%s' (GET /v1/models lists them)", req->router);
        return 404;
    }
    cs->ri = acquire(s, (size_t)slot);
    const struct ipr_serve_router_cfg *rc = cs->ri->cfg;
    memset(rq, 0, sizeof *rq);
    rq->text = req->text;
    rq->len = req->text_len;
    rq->tau = req->has_tau ? req->tau : rc->has_tau ? rc->tau : ipr_router_default_tau(cs->ri->router);
    rq->rule = req->rule >= 0 ? req->rule : rc->rule;
    rq->delta = req->has_delta ? req->delta : rc->delta;
    rq->models = req->n_models ? req->models : NULL;
    rq->n_models = req->n_models;
    rq->family = req->family;
    struct ipr_router_ctx *ctx = ctx_get(cs->ri);
    if (!ctx) {
        snprintf(msg, cap, "cannot create a routing context: %s", ipr_error_message());
        return 503;
    }
    double t0 = serve_now();
    int rcode = ipr_router_route(cs->ri->router, ctx, rq, res);
    double us = (serve_now() - t0) * 1e6;
    ctx_put(cs->ri, ctx);
    if (rcode != IPR_OK) {
        snprintf(msg, cap, "%s", ipr_error_message());
        return rcode == IPR_ERR_NOMEM ? 503 : 400;
    }
    if (res->d.model < 0 || (size_t)res->d.model >= res->n) {
        snprintf(msg, cap, "no model could be chosen%s%s", res->reason[0] ? ": " : "", res->reason);
        return 503;
    }
    if (!(res->latency_us > 0))
        res->latency_us = us;
    int st = cs->ri->strongest;
    metrics_decision(cs->ri->rm, cs->ri->midx[res->d.model], res->latency_us, res->cost[res->d.model],
                     st >= 0 ? res->cost[st] : res->cost[res->d.model], res->d.fallback_used);

    /* the log record (completed at the end of the request for chat) */
    const struct ipr_registry *reg = ipr_router_registry(cs->ri->router);
    struct ipr_declog_record *r = &cs->rec;
    memset(r, 0, sizeof *r);
    new_id(s, r->id, sizeof r->id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->ts = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    snprintf(r->router, sizeof r->router, "%s", rc->name);
    r->tau = rq->tau;
    snprintf(r->rule, sizeof r->rule, "%s", ipr_rule_name(res->rule));
    snprintf(r->model, sizeof r->model, "%s", reg->models[res->d.model].name);
    r->threshold = res->d.threshold;
    r->expected_cost = res->d.expected_cost;
    r->fallback_used = res->d.fallback_used;
    r->latency_us = res->latency_us;
    if (s->log) {
        r->predictions = json_map(reg, res->pred, res->n);
        r->costs = json_map(reg, res->cost, res->n);
    }
    cs->has_rec = 1;
    cs->route_model = res->d.model;
    cs->qe_fallback = res->d.fallback_used;
    snprintf(cs->qe_reason, sizeof cs->qe_reason, "%s", res->reason);
    cs->tau = rq->tau;
    return 0;
}

/* The decision's fields (DESIGN.md §6), as ipr_route_result_json renders them
 * without explanation, written directly: this is the hot path of /v1/route,
 * and a cJSON tree per request cost a third of the routing time. */
static void decision_json(struct sbuf *b, const struct ipr_registry *reg, const struct ipr_route_request *rq,
                          const struct ipr_route_result *res)
{
    sbuf_str(b, ",\"model\":");
    json_str(b, res->d.model >= 0 ? reg->models[res->d.model].name : "");
    sbuf_str(b, ",\"tau\":");
    sbuf_num(b, rq->tau);
    sbuf_str(b, ",\"rule\":\"");
    sbuf_str(b, ipr_rule_name(res->rule));
    sbuf_str(b, "\",\"predicted\":{");
    int first = 1;
    for (size_t m = 0; m < res->n; m++) {
        if (!res->allowed[m])
            continue;
        if (!first)
            sbuf_put(b, ",", 1);
        first = 0;
        json_str(b, reg->models[m].name);
        sbuf_put(b, ":", 1);
        sbuf_num(b, res->pred[m]);
    }
    sbuf_str(b, "},\"threshold\":");
    sbuf_num(b, res->d.threshold);
    sbuf_str(b, ",\"expected_cost\":");
    sbuf_num(b, res->d.expected_cost);
    sbuf_str(b, res->d.fallback_used ? ",\"fallback_used\":true}" : ",\"fallback_used\":false}");
}

/* Parses the body as a request of the given kind and routes it. Returns 1
 * with req (to free), rq and res filled, or 0 after replying with the error
 * (*ret holds the reply's result). */
static int parse_and_route(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs, enum ipr_serve_kind kind,
                           struct ipr_serve_request *req, struct ipr_route_request *rq,
                           struct ipr_route_result *res, enum MHD_Result *ret)
{
    char msg[300];
    if (ipr_serve_parse_request(kind, cs->body ? cs->body : "", cs->len, req) != IPR_OK) {
        *ret = reply_error(s, c, cs, (unsigned)req->status, req->err_type, req->err, NULL);
        ipr_serve_request_free(req);
        return 0;
    }
    unsigned st = do_route(s, cs, req, rq, res, msg, sizeof msg);
    if (st) {
        ipr_serve_request_free(req);
        *ret = reply_error(s, c, cs, st, st == 404 ? "not_found_error" : st >= 500 ? "server_error" : "invalid_request_error", msg, NULL);
        return 0;
    }
    return 1;
}

static enum MHD_Result handle_route(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs)
{
    struct ipr_serve_request req;
    struct ipr_route_request rq;
    struct ipr_route_result res;
    enum MHD_Result ret_err;
    if (!parse_and_route(s, c, cs, IPR_SERVE_ROUTE, &req, &rq, &res, &ret_err))
        return ret_err;
    struct sbuf b = { 0 };
    sbuf_str(&b, "{\"id\":\"");
    sbuf_str(&b, cs->rec.id);
    sbuf_str(&b, "\",\"router\":");
    json_str(&b, cs->ri->cfg->name);
    if (req.explain) {
        /* the router's own rendering, with its explanation, spliced in */
        char *json = ipr_route_result_json(cs->ri->router, &rq, &res, 1);
        if (!json)
            b.oom = 1;
        else
            sbuf_printf(&b, "%s%s", strlen(json) > 2 ? "," : "", json + 1);
        free(json);
    } else {
        decision_json(&b, ipr_router_registry(cs->ri->router), &rq, &res);
    }
    ipr_serve_request_free(&req);
    if (b.oom) {
        free(b.p);
        return reply_error(s, c, cs, 503, "server_error", "out of memory", NULL);
    }
    snprintf(cs->rec.endpoint, sizeof cs->rec.endpoint, "route");
    const char *hdrs[] = { "x-ipr-request-id", cs->rec.id, NULL };
    return reply(s, c, cs, 200, "application/json", b.p, b.len, hdrs);
}

/* --------------------------------------------------------------- chat */

/* The decision's x-ipr-* headers (the answering model's are added by the caller). */
static void fmt_decision_headers(struct conn *cs, struct MHD_Response *r)
{
    char v[64];
    MHD_add_response_header(r, "x-ipr-request-id", cs->rec.id);
    MHD_add_response_header(r, "x-ipr-router", cs->rec.router);
    MHD_add_response_header(r, "x-ipr-routed-model", cs->rec.model);
    snprintf(v, sizeof v, "%.6g", cs->tau);
    MHD_add_response_header(r, "x-ipr-tau", v);
    snprintf(v, sizeof v, "%.6g", cs->rec.threshold);
    MHD_add_response_header(r, "x-ipr-threshold", v);
    snprintf(v, sizeof v, "%.6g", cs->rec.expected_cost);
    MHD_add_response_header(r, "x-ipr-expected-cost", v);
    MHD_add_response_header(r, "x-ipr-rule", cs->rec.rule);
}

static ssize_t job_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct job *j = cls;
    pthread_mutex_lock(&j->mu);
    size_t avail = j->out_len - j->out_pos;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, j->out + j->out_pos, n);
        j->out_pos += n;
        if (j->paused && !j->unpause_req && j->out_len - j->out_pos < (1u << 20)) {
            j->unpause_req = 1; /* the proxy thread clears both when it resumes the transfer */
            pthread_mutex_unlock(&j->mu);
            proxy_unpause(j->proxy, j);
            return (ssize_t)n;
        }
        pthread_mutex_unlock(&j->mu);
        return (ssize_t)n;
    }
    if (j->done) {
        int err = j->stream_error;
        pthread_mutex_unlock(&j->mu);
        return err ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    }
    j->suspended = 1;
    MHD_suspend_connection(j->conn);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

static void job_read_free(void *cls)
{
    job_release(cls);
}

static char *rewrite_model(const char *body, size_t len, const char *name, size_t *out_len)
{
    cJSON *o = cJSON_ParseWithLength(body, len);
    char *s = NULL;
    if (cJSON_IsObject(o) && cJSON_GetObjectItemCaseSensitive(o, "model")) {
        cJSON_ReplaceItemInObjectCaseSensitive(o, "model", cJSON_CreateString(name));
        s = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    if (s)
        *out_len = strlen(s);
    return s;
}

/* The connection was resumed: the job committed, finished or failed. */
static enum MHD_Result chat_respond(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs)
{
    struct job *j = cs->job;
    pthread_mutex_lock(&j->mu);
    if (j->state == JOB_PENDING || (!j->stream && !j->done)) {
        /* woken early: wait again */
        j->suspended = 1;
        MHD_suspend_connection(c);
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
    }
    const struct ipr_registry *reg = ipr_router_registry(cs->ri->router);
    const char *answered = reg->models[j->model].name;
    char reason[300] = "";
    const char *fb = "none";
    if (j->fallback_used) {
        fb = "upstream";
        snprintf(reason, sizeof reason, "%s", j->err);
    } else if (cs->qe_fallback) {
        fb = "qe";
        snprintf(reason, sizeof reason, "%s", cs->qe_reason);
    }
    header_safe(reason);
    struct MHD_Response *r = NULL;
    unsigned status;
    if (j->state == JOB_FAILED) {
        status = (unsigned)(j->status ? j->status : 502);
        char msg[300];
        snprintf(msg, sizeof msg, "%s", j->err);
        pthread_mutex_unlock(&j->mu);
        cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "message", msg);
        cJSON_AddStringToObject(e, "type", "upstream_error");
        cJSON_AddNumberToObject(e, "code", status);
        char *body = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!body)
            return MHD_NO;
        r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!r) { free(body); return MHD_NO; }
        MHD_add_response_header(r, "Content-Type", "application/json");
    } else if (!j->stream) {
        status = (unsigned)j->status;
        size_t len = 0;
        char *body = rewrite_model(j->out + j->out_pos, j->out_len - j->out_pos, answered, &len);
        if (!body) { /* not JSON (or no "model"): pass it on as it came */
            len = j->out_len - j->out_pos;
            body = malloc(len + 1);
            if (body)
                memcpy(body, j->out + j->out_pos, len);
        }
        char ctype[128];
        snprintf(ctype, sizeof ctype, "%s", j->content_type);
        pthread_mutex_unlock(&j->mu);
        if (!body)
            return MHD_NO;
        r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!r) { free(body); return MHD_NO; }
        header_safe(ctype);
        MHD_add_response_header(r, "Content-Type", ctype);
    } else {
        status = (unsigned)j->status;
        char ctype[128];
        snprintf(ctype, sizeof ctype, "%s", j->content_type);
        pthread_mutex_unlock(&j->mu);
        atomic_fetch_add(&j->refs, 1);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, job_read, j, job_read_free);
        if (!r) {
            job_release(j);
            return MHD_NO;
        }
        header_safe(ctype);
        MHD_add_response_header(r, "Content-Type", ctype);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
    }
    fmt_decision_headers(cs, r);
    char am[160];
    snprintf(am, sizeof am, "%s", answered);
    header_safe(am);
    MHD_add_response_header(r, "x-ipr-model", am);
    MHD_add_response_header(r, "x-ipr-fallback", fb);
    if (reason[0])
        MHD_add_response_header(r, "x-ipr-fallback-reason", reason);
    if (atomic_load(&s->draining))
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    cs->queued = 1;
    count(s, EP_CHAT, status);
    return ret;
}

static enum MHD_Result handle_chat(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs)
{
    struct ipr_serve_request req;
    struct ipr_route_request rq;
    struct ipr_route_result res;
    enum MHD_Result ret_err;
    if (!parse_and_route(s, c, cs, IPR_SERVE_CHAT, &req, &rq, &res, &ret_err))
        return ret_err;
    snprintf(cs->rec.endpoint, sizeof cs->rec.endpoint, "chat");
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        ipr_serve_request_free(&req);
        return reply_error(s, c, cs, 503, "server_error", "out of memory", NULL);
    }
    atomic_init(&j->refs, 1); /* the connection's */
    pthread_mutex_init(&j->mu, NULL);
    j->proxy = s->proxy;
    j->conn = c;
    j->ri = cs->ri;
    atomic_fetch_add(&j->ri->refs, 1); /* the proxy may outlive the connection */
    j->stream = req.stream;
    j->model = res.d.model;
    j->body = req.json;
    req.json = NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(j->body, "ipr");
    ipr_serve_request_free(&req);
    cs->job = j;
    pthread_mutex_lock(&j->mu);
    j->suspended = 1;
    MHD_suspend_connection(c);
    pthread_mutex_unlock(&j->mu);
    proxy_submit(s->proxy, j);
    return MHD_YES;
}

/* ----------------------------------------------------------- the rest */

static enum MHD_Result handle_feedback(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs)
{
    char id[128], err[200];
    double q;
    if (ipr_serve_parse_feedback(cs->body ? cs->body : "", cs->len, id, sizeof id, &q, err, sizeof err) != IPR_OK)
        return reply_error(s, c, cs, 400, "invalid_request_error", err, NULL);
    if (!s->log)
        return reply_error(s, c, cs, 409, "invalid_request_error", "this server keeps no decision log (set log.path in the config)", NULL);
    int rc = ipr_declog_feedback(s->log, id, q);
    if (rc == IPR_ERR_NOTFOUND)
        return reply_error(s, c, cs, 404, "not_found_error", ipr_error_message(), NULL);
    if (rc)
        return reply_error(s, c, cs, 503, "server_error", ipr_error_message(), NULL);
    char *body = strdup("{\"ok\":true}");
    return body ? reply(s, c, cs, 200, "application/json", body, strlen(body), NULL) : MHD_NO;
}

static enum MHD_Result handle_models(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < s->n_slots; i++) {
        struct rinst *ri = acquire(s, i);
        const struct ipr_registry *reg = ipr_router_registry(ri->router);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", ri->cfg->name);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 0);
        cJSON_AddStringToObject(m, "owned_by", "ipr");
        cJSON *x = cJSON_AddObjectToObject(m, "ipr");
        cJSON_AddBoolToObject(x, "default", i == s->def_slot);
        cJSON_AddNumberToObject(x, "tau", ri->cfg->has_tau ? ri->cfg->tau : ipr_router_default_tau(ri->router));
        cJSON_AddStringToObject(x, "rule", ipr_rule_name(ri->cfg->rule >= 0 ? (enum ipr_rule)ri->cfg->rule
                                                                            : ipr_router_default_rule(ri->router)));
        cJSON_AddStringToObject(x, "fallback", reg->fallback ? reg->fallback : "");
        cJSON *cands = cJSON_AddArrayToObject(x, "candidates");
        for (size_t k = 0; k < reg->n; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", reg->models[k].name);
            if (reg->models[k].family)
                cJSON_AddStringToObject(e, "family", reg->models[k].family);
            cJSON_AddBoolToObject(e, "upstream", ri->ups[k].ok);
            cJSON_AddItemToArray(cands, e);
        }
        cJSON_AddItemToArray(data, m);
        rinst_release(ri);
    }
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return body ? reply(s, c, cs, 200, "application/json", body, strlen(body), NULL) : MHD_NO;
}

static enum MHD_Result handle_metrics(struct ipr_server *s, struct MHD_Connection *c, struct conn *cs)
{
    struct sbuf b = { 0 };
    const char *names[64];
    struct router_metrics *rms[64];
    size_t n = s->n_slots < 64 ? s->n_slots : 64;
    for (size_t i = 0; i < n; i++) {
        names[i] = s->slots[i].cfg->name;
        rms[i] = &s->slots[i].rm;
    }
    metrics_render(&b, names, rms, n);
    sbuf_printf(&b, "# HELP ipr_http_requests_total HTTP requests answered, by endpoint and status class.\n"
                    "# TYPE ipr_http_requests_total counter\n");
    static const char *const cls[3] = { "2xx", "4xx", "5xx" };
    for (int e = 0; e < EP_COUNT; e++)
        for (int k = 0; k < 3; k++)
            sbuf_printf(&b, "ipr_http_requests_total{endpoint=\"%s\",code=\"%s\"} %llu\n", ep_names[e], cls[k],
                        (unsigned long long)atomic_load(&s->http[e][k]));
    sbuf_printf(&b, "# HELP ipr_inflight_requests Requests being handled now.\n# TYPE ipr_inflight_requests gauge\n"
                    "ipr_inflight_requests %d\n", atomic_load(&s->inflight));
    sbuf_printf(&b, "# HELP ipr_router_reloads_total Router bundle reloads (SIGHUP), by result.\n# TYPE ipr_router_reloads_total counter\n"
                    "ipr_router_reloads_total{result=\"ok\"} %llu\nipr_router_reloads_total{result=\"failed\"} %llu\n",
                (unsigned long long)atomic_load(&s->reloads), (unsigned long long)atomic_load(&s->reload_failures));
    if (s->log) {
        uint64_t w, d, bt;
        ipr_declog_stats(s->log, &w, &d, &bt);
        sbuf_printf(&b, "# HELP ipr_log_records_total Decision log records, by outcome.\n# TYPE ipr_log_records_total counter\n"
                        "ipr_log_records_total{result=\"written\"} %llu\nipr_log_records_total{result=\"dropped\"} %llu\n"
                        "# HELP ipr_log_batches_total Decision log transactions committed.\n# TYPE ipr_log_batches_total counter\n"
                        "ipr_log_batches_total %llu\n",
                    (unsigned long long)w, (unsigned long long)d, (unsigned long long)bt);
    }
    if (b.oom) {
        free(b.p);
        return reply_error(s, c, cs, 503, "server_error", "out of memory", NULL);
    }
    return reply(s, c, cs, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, NULL);
}

static int authorized(const struct ipr_server *s, struct MHD_Connection *c)
{
    if (s->cfg.n_keys == 0)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *k = h + 7;
    size_t kl = strlen(k);
    int ok = 0;
    for (size_t i = 0; i < s->cfg.n_keys; i++) {
        const char *want = s->cfg.keys[i];
        size_t wl = strlen(want);
        unsigned char diff = (unsigned char)(kl != wl);
        for (size_t b = 0; b < wl; b++)
            diff |= (unsigned char)(want[b] ^ (b < kl ? k[b] : 0));
        ok |= diff == 0;
    }
    return ok;
}

static enum MHD_Result add_len(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    (void)kind;
    *(size_t *)cls += strlen(k) + (v ? strlen(v) : 0) + 4;
    return MHD_YES;
}

/* Bytes of the request's header fields (name, value, ": ", CRLF). MHD's
 * connection memory limit is the hard stop; this gives a JSON 431 below it. */
static size_t header_bytes(struct MHD_Connection *c)
{
    size_t n = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_len, &n);
    return n;
}

static enum endpoint classify(const char *url)
{
    if (strcmp(url, "/v1/route") == 0) return EP_ROUTE;
    if (strcmp(url, "/v1/chat/completions") == 0) return EP_CHAT;
    if (strcmp(url, "/v1/feedback") == 0) return EP_FEEDBACK;
    if (strcmp(url, "/v1/models") == 0) return EP_MODELS;
    if (strcmp(url, "/healthz") == 0) return EP_HEALTH;
    if (strcmp(url, "/metrics") == 0) return EP_METRICS;
    return EP_NONE;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    struct ipr_server *s = cls;
    struct conn *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
        cs->ep = classify(url);
        int is_post = strcmp(method, "POST") == 0, is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        if (header_bytes(c) > s->cfg.limits.max_header) {
            char msg[128];
            snprintf(msg, sizeof msg, "request header fields larger than %zu bytes", s->cfg.limits.max_header);
            return reply_error(s, c, cs, 431, "invalid_request_error", msg, NULL);
        }
        if (cs->ep == EP_NONE)
            return reply_error(s, c, cs, 404, "not_found_error", "no such endpoint", NULL);
        int wants_post = cs->ep == EP_ROUTE || cs->ep == EP_CHAT || cs->ep == EP_FEEDBACK;
        if ((wants_post && !is_post) || (!wants_post && !is_get)) {
            const char *allow[] = { "Allow", wants_post ? "POST" : "GET, HEAD", NULL };
            return reply_error(s, c, cs, 405, "invalid_request_error", "method not allowed", allow);
        }
        if (cs->ep != EP_HEALTH && !authorized(s, c)) {
            const char *h[] = { "WWW-Authenticate", "Bearer", NULL };
            return reply_error(s, c, cs, 401, "authentication_error",
                               "missing or invalid API key (Authorization: Bearer KEY)", h);
        }
        if (atomic_load(&s->draining) && cs->ep != EP_HEALTH)
            return reply_error(s, c, cs, 503, "server_error", "server is shutting down", NULL);
        if (!wants_post)
            return MHD_YES; /* answered on the next call, once the request is complete */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->cfg.limits.max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->cfg.limits.max_body);
            return reply_error(s, c, cs, 413, "invalid_request_error", msg, NULL);
        }
        if (atomic_fetch_add(&s->inflight, 1) >= (int)s->cfg.limits.max_inflight) {
            atomic_fetch_sub(&s->inflight, 1);
            const char *h[] = { "Retry-After", "1", NULL };
            return reply_error(s, c, cs, 503, "server_error", "too many requests in flight", h);
        }
        cs->counted = 1;
        return MHD_YES;
    }
    if (cs->queued) {              /* answered early: swallow the rest */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cs->too_large || cs->len + n > s->cfg.limits.max_body) {
            cs->too_large = 1;
            free(cs->body);
            cs->body = NULL;
            cs->len = cs->cap = 0;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t cap = cs->cap ? cs->cap : 4096;
            while (cap < cs->len + n + 1)
                cap *= 2;
            char *p = realloc(cs->body, cap);
            if (!p)
                return MHD_NO;
            cs->body = p;
            cs->cap = cap;
        }
        memcpy(cs->body + cs->len, upload, n);
        cs->len += n;
        cs->body[cs->len] = '\0';
        return MHD_YES;
    }
    if (cs->job)
        return chat_respond(s, c, cs);
    if (cs->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->cfg.limits.max_body);
        return reply_error(s, c, cs, 413, "invalid_request_error", msg, NULL);
    }
    switch (cs->ep) {
    case EP_HEALTH: {
        char *body = malloc(128);
        if (!body)
            return MHD_NO;
        int draining = atomic_load(&s->draining);
        snprintf(body, 128, "{\"status\":\"%s\",\"routers\":%zu,\"inflight\":%d}",
                 draining ? "draining" : "ok", s->n_slots, atomic_load(&s->inflight));
        return reply(s, c, cs, draining ? 503 : 200, "application/json", body, strlen(body), NULL);
    }
    case EP_MODELS: return handle_models(s, c, cs);
    case EP_METRICS: return handle_metrics(s, c, cs);
    case EP_ROUTE: return handle_route(s, c, cs);
    case EP_CHAT: return handle_chat(s, c, cs);
    case EP_FEEDBACK: return handle_feedback(s, c, cs);
    default: return reply_error(s, c, cs, 404, "not_found_error", "no such endpoint", NULL);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    struct ipr_server *s = cls;
    struct conn *cs = *con_cls;
    if (!cs)
        return;
    *con_cls = NULL;
    if (cs->job) {
        struct job *j = cs->job;
        pthread_mutex_lock(&j->mu);
        j->cancelled = 1;
        j->suspended = 0;
        if (cs->has_rec) {
            const struct ipr_registry *reg = ipr_router_registry(cs->ri->router);
            if (j->state != JOB_PENDING)
                cs->rec.upstream_status = (int)j->status;
            if (j->state == JOB_COMMITTED)
                snprintf(cs->rec.answered, sizeof cs->rec.answered, "%s", reg->models[j->model].name);
            cs->rec.upstream_fallback = j->fallback_used;
            cs->rec.upstream_ms = j->upstream_ms;
            if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && j->state == JOB_COMMITTED && !j->done)
                cs->rec.upstream_status = 499; /* the client went away mid-answer */
        }
        pthread_mutex_unlock(&j->mu);
        job_release(j);
    }
    if (cs->has_rec && s->log)
        ipr_declog_append(s->log, &cs->rec);
    free(cs->rec.predictions);
    free(cs->rec.costs);
    rinst_release(cs->ri);
    free(cs->body);
    if (cs->counted)
        atomic_fetch_sub(&s->inflight, 1);
    free(cs);
}

/* ------------------------------------------------------------ lifecycle */

static int copy_config(const struct ipr_serve_config *in, struct ipr_serve_config *out)
{
    /* Round-trip through the parser's own structures: copy every string. */
    ipr_serve_config_defaults(out);
    out->port = in->port;
    out->limits = in->limits;
    out->log_batch = in->log_batch;
    out->log_flush_s = in->log_flush_s;
    out->insecure = in->insecure;
    if ((in->host && !(out->host = strdup(in->host))) ||
        (in->default_router && !(out->default_router = strdup(in->default_router))) ||
        (in->log_path && !(out->log_path = strdup(in->log_path))))
        return IPR_ERR_NOMEM;
    for (size_t i = 0; i < in->n_routers; i++) {
        const struct ipr_serve_router_cfg *r = &in->routers[i];
        if (ipr_serve_config_add_router(out, r->name, r->bundle, r->encoder))
            return IPR_ERR_NOMEM;
        struct ipr_serve_router_cfg *o = &out->routers[out->n_routers - 1];
        o->has_tau = r->has_tau;
        o->tau = r->tau;
        o->rule = r->rule;
        o->delta = r->delta;
        if (r->strongest && !(o->strongest = strdup(r->strongest)))
            return IPR_ERR_NOMEM;
    }
    if (in->n_upstreams) {
        if (!(out->upstreams = calloc(in->n_upstreams, sizeof *out->upstreams)))
            return IPR_ERR_NOMEM;
        out->n_upstreams = in->n_upstreams;
        for (size_t i = 0; i < in->n_upstreams; i++) {
            const struct ipr_serve_upstream_cfg *u = &in->upstreams[i];
            struct ipr_serve_upstream_cfg *o = &out->upstreams[i];
            o->model = strdup(u->model);
            o->base_url = strdup(u->base_url);
            o->api_key_env = u->api_key_env ? strdup(u->api_key_env) : NULL;
            o->upstream_model = u->upstream_model ? strdup(u->upstream_model) : NULL;
            if (!o->model || !o->base_url || (u->api_key_env && !o->api_key_env) ||
                (u->upstream_model && !o->upstream_model))
                return IPR_ERR_NOMEM;
        }
    }
    if (in->n_keys) {
        if (!(out->keys = calloc(in->n_keys, sizeof *out->keys)))
            return IPR_ERR_NOMEM;
        out->n_keys = in->n_keys;
        for (size_t i = 0; i < in->n_keys; i++)
            if (!(out->keys[i] = strdup(in->keys[i])))
                return IPR_ERR_NOMEM;
    }
    return IPR_OK;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
        msg[--l] = '\0';
    fprintf(stderr, "ipr serve: http: %s\n", msg);
}

static int bind_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host ? host : "127.0.0.1", ps, &hints, &ai) != 0 || !ai)
        return ipr_error_set(IPR_ERR_INVAL, "cannot resolve listen address '%s'", host ? host : "127.0.0.1");
    memset(ss, 0, sizeof *ss);
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return IPR_OK;
}

int ipr_server_start(const struct ipr_serve_config *cfg_in, struct ipr_server **out)
{
    *out = NULL;
    int rc = ipr_serve_config_check(cfg_in);
    if (rc)
        return rc;
    struct ipr_server *s = calloc(1, sizeof *s);
    if (!s)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->swap_mu, NULL);
    if (copy_config(cfg_in, &s->cfg) != IPR_OK) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto err;
    }
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    s->id_prefix = rnd;
    s->n_slots = s->cfg.n_routers;
    if (!(s->slots = calloc(s->n_slots, sizeof *s->slots))) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < s->n_slots; i++) {
        s->slots[i].cfg = &s->cfg.routers[i];
        if (s->cfg.default_router && strcmp(s->cfg.default_router, s->cfg.routers[i].name) == 0)
            s->def_slot = i;
        if ((rc = rinst_open(s, &s->slots[i], &s->slots[i].cur)) != IPR_OK)
            goto err;
    }
    if (s->cfg.log_path && (rc = ipr_declog_open(s->cfg.log_path, s->cfg.log_batch, s->cfg.log_flush_s, &s->log)))
        goto err;
    if ((rc = proxy_start(&s->cfg.limits, &s->proxy)))
        goto err;

    struct sockaddr_storage ss;
    if ((rc = bind_addr(s->cfg.host, s->cfg.port, &ss)))
        goto err;
    unsigned threads = s->cfg.limits.threads;
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                              MHD_OPTION_THREAD_POOL_SIZE, threads,
                              MHD_OPTION_CONNECTION_LIMIT, s->cfg.limits.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.limits.client_timeout_s,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(s->cfg.limits.max_header + 8192),
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096,
                              MHD_OPTION_END);
    if (!s->mhd) {
        rc = ipr_error_set(IPR_ERR_IO, "cannot listen on %s:%d (in use, or not permitted)",
                           s->cfg.host ? s->cfg.host : "127.0.0.1", s->cfg.port);
        goto err;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->cfg.port;
    *out = s;
    return IPR_OK;
err:
    ipr_server_stop(s);
    return rc;
}

int ipr_server_port(const struct ipr_server *s)
{
    return s->port;
}

int ipr_server_reload(struct ipr_server *s)
{
    int first = IPR_OK;
    for (size_t i = 0; i < s->n_slots; i++) {
        struct rinst *ri;
        int rc = rinst_open(s, &s->slots[i], &ri);
        if (rc) {
            atomic_fetch_add(&s->reload_failures, 1);
            if (!first)
                first = rc;
            continue;
        }
        pthread_mutex_lock(&s->swap_mu);
        struct rinst *old = s->slots[i].cur;
        s->slots[i].cur = ri;
        pthread_mutex_unlock(&s->swap_mu);
        rinst_release(old);
        atomic_fetch_add(&s->reloads, 1);
    }
    return first;
}

void ipr_server_stop(struct ipr_server *s)
{
    if (!s)
        return;
    if (s->mhd) {
        atomic_store(&s->draining, 1);
        MHD_socket ls = MHD_quiesce_daemon(s->mhd);
        if (ls != MHD_INVALID_SOCKET)
            close(ls);
        double t0 = serve_now();
        while (atomic_load(&s->inflight) > 0 && serve_now() - t0 < s->cfg.limits.drain_s)
            usleep(20000);
        /* What is left is cut short: cancel upstream calls so suspended
         * connections resume and finish with an error. */
        proxy_cancel_all(s->proxy);
        t0 = serve_now();
        while (atomic_load(&s->inflight) > 0 && serve_now() - t0 < 2.0)
            usleep(20000);
        MHD_stop_daemon(s->mhd);
    }
    proxy_stop(s->proxy);
    ipr_declog_close(s->log);
    for (size_t i = 0; i < s->n_slots; i++)
        rinst_release(s->slots[i].cur);
    free(s->slots);
    ipr_serve_config_free(&s->cfg);
    pthread_mutex_destroy(&s->swap_mu);
    free(s);
}
