/*
 * config.c — the JSON configuration of `ipr serve` (docs/serve-config.example.json):
 *
 *   {"host": "127.0.0.1", "port": 8080,
 *    "routers": {"ipr": {"bundle": "r.ipr", "encoder": null, "tau": 0.3,
 *                        "rule": "range", "delta": 0, "strongest": "gpt-4"}},
 *    "default_router": "ipr",
 *    "upstreams": {"gpt-4": {"base_url": "...", "api_key_env": "OPENAI_API_KEY", "model": "gpt-4o"}},
 *    "keys": ["sk-client-1"],
 *    "limits": {"max_body": 1048576, "max_header": 16384, "client_timeout_s": 10, ...},
 *    "log": {"path": "decisions.db", "batch": 256, "flush_s": 0.05},
 *    "insecure": false}
 *
 * Every key is optional; unknown keys are errors (a misspelt limit must not be
 * silently ignored). Errors name the file and the key.
 */
#include "ipr/serve.h"
#include "ipr/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ipr_serve_config_defaults(struct ipr_serve_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 8080;
    cfg->limits.max_body = 1 << 20;
    cfg->limits.max_header = 8 << 10; /* MHD zeroes a connection's pool (max_header + 8 KiB) per request */
    cfg->limits.client_timeout_s = 10;
    cfg->limits.max_connections = 4096;
    cfg->limits.max_inflight = 2048;
    cfg->limits.threads = 0;
    cfg->limits.upstream_connect_s = 5;
    cfg->limits.upstream_first_byte_s = 60;
    cfg->limits.upstream_idle_s = 30;
    cfg->limits.upstream_total_s = 600;
    cfg->limits.drain_s = 30;
    cfg->log_batch = 256;
    cfg->log_flush_s = 0.05;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void router_free(struct ipr_serve_router_cfg *r)
{
    free(r->name);
    free(r->bundle);
    free(r->encoder);
    free(r->strongest);
}

void ipr_serve_config_free(struct ipr_serve_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->host);
    for (size_t i = 0; i < cfg->n_routers; i++)
        router_free(&cfg->routers[i]);
    free(cfg->routers);
    free(cfg->default_router);
    for (size_t i = 0; i < cfg->n_upstreams; i++) {
        free(cfg->upstreams[i].model);
        free(cfg->upstreams[i].base_url);
        free(cfg->upstreams[i].api_key_env);
        free(cfg->upstreams[i].upstream_model);
    }
    free(cfg->upstreams);
    for (size_t i = 0; i < cfg->n_keys; i++)
        free(cfg->keys[i]);
    free(cfg->keys);
    free(cfg->log_path);
    memset(cfg, 0, sizeof *cfg);
}

static struct ipr_serve_router_cfg *find_router(struct ipr_serve_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_routers; i++)
        if (strcmp(cfg->routers[i].name, name) == 0)
            return &cfg->routers[i];
    return NULL;
}

static struct ipr_serve_router_cfg *new_router(struct ipr_serve_config *cfg, const char *name)
{
    struct ipr_serve_router_cfg *r = find_router(cfg, name);
    if (r)
        return r;
    void *p = realloc(cfg->routers, (cfg->n_routers + 1) * sizeof *cfg->routers);
    if (!p)
        return NULL;
    cfg->routers = p;
    r = &cfg->routers[cfg->n_routers];
    memset(r, 0, sizeof *r);
    r->rule = -1;
    if (!(r->name = strdup(name)))
        return NULL;
    cfg->n_routers++;
    return r;
}

int ipr_serve_config_add_router(struct ipr_serve_config *cfg, const char *name, const char *bundle,
                                const char *encoder)
{
    struct ipr_serve_router_cfg *r = new_router(cfg, name);
    if (!r)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    free(r->bundle);
    free(r->encoder);
    r->bundle = strdup(bundle);
    r->encoder = dup_or_null(encoder);
    if (!r->bundle || (encoder && !r->encoder))
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    return IPR_OK;
}

#define BAD(...) do { rc = ipr_error_set(IPR_ERR_FORMAT, __VA_ARGS__); goto out; } while (0)

/* Replaces *dst with a copy of the string item (or NULL for JSON null). */
static int take_str(const cJSON *v, char **dst, const char *what, const char *key)
{
    if (cJSON_IsNull(v)) {
        free(*dst);
        *dst = NULL;
        return IPR_OK;
    }
    if (!cJSON_IsString(v))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: %s must be a string", what, key);
    char *s = strdup(v->valuestring);
    if (!s)
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return IPR_OK;
}

static int take_num(const cJSON *v, double lo, double hi, double *out, const char *what, const char *key)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: %s must be a number in [%g, %g]", what, key, lo, hi);
    *out = v->valuedouble;
    return IPR_OK;
}

static int parse_limits(const cJSON *o, struct ipr_serve_limits *l, const char *what)
{
    static const struct { const char *key; double lo, hi; } keys[] = {
        { "max_body", 64, 1 << 30 }, { "max_header", 1024, 1 << 24 },
        { "client_timeout_s", 1, 3600 }, { "max_connections", 1, 1 << 20 },
        { "max_inflight", 1, 1 << 20 }, { "threads", 0, 1024 },
        { "upstream_connect_s", 0.001, 3600 }, { "upstream_first_byte_s", 0.001, 86400 },
        { "upstream_idle_s", 0.001, 86400 }, { "upstream_total_s", 0.001, 86400 },
        { "drain_s", 0, 3600 },
    };
    if (!cJSON_IsObject(o))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: limits must be an object", what);
    const cJSON *v;
    cJSON_ArrayForEach(v, o) {
        size_t k = 0;
        while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].key, v->string) != 0)
            k++;
        if (k == sizeof keys / sizeof keys[0])
            return ipr_error_set(IPR_ERR_FORMAT, "%s: unknown limit '%s'", what, v->string);
        double d = 0;
        int rc = take_num(v, keys[k].lo, keys[k].hi, &d, what, v->string);
        if (rc)
            return rc;
        switch (k) {
        case 0: l->max_body = (size_t)d; break;
        case 1: l->max_header = (size_t)d; break;
        case 2: l->client_timeout_s = (unsigned)d; break;
        case 3: l->max_connections = (unsigned)d; break;
        case 4: l->max_inflight = (unsigned)d; break;
        case 5: l->threads = (unsigned)d; break;
        case 6: l->upstream_connect_s = d; break;
        case 7: l->upstream_first_byte_s = d; break;
        case 8: l->upstream_idle_s = d; break;
        case 9: l->upstream_total_s = d; break;
        default: l->drain_s = d; break;
        }
    }
    return IPR_OK;
}

static int parse_router(const cJSON *o, struct ipr_serve_router_cfg *r, const char *what)
{
    if (!cJSON_IsObject(o))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: routers.%s must be an object", what, r->name);
    const cJSON *v;
    int rc = IPR_OK;
    cJSON_ArrayForEach(v, o) {
        const char *k = v->string;
        if (strcmp(k, "bundle") == 0) rc = take_str(v, &r->bundle, what, "bundle");
        else if (strcmp(k, "encoder") == 0) rc = take_str(v, &r->encoder, what, "encoder");
        else if (strcmp(k, "strongest") == 0) rc = take_str(v, &r->strongest, what, "strongest");
        else if (strcmp(k, "tau") == 0) { rc = take_num(v, 0, 1, &r->tau, what, "tau"); r->has_tau = 1; }
        else if (strcmp(k, "delta") == 0) rc = take_num(v, 0, 1, &r->delta, what, "delta");
        else if (strcmp(k, "rule") == 0) {
            enum ipr_rule rule;
            if (!cJSON_IsString(v) || ipr_rule_parse(v->valuestring, &rule) != IPR_OK)
                return ipr_error_set(IPR_ERR_FORMAT, "%s: routers.%s.rule must be range, dynmax or difference", what, r->name);
            r->rule = (int)rule;
        } else
            return ipr_error_set(IPR_ERR_FORMAT, "%s: routers.%s: unknown key '%s'", what, r->name, k);
        if (rc)
            return rc;
    }
    return IPR_OK;
}

static int parse_upstream(const cJSON *o, struct ipr_serve_config *cfg, const char *what)
{
    if (!cJSON_IsObject(o))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: upstreams.%s must be an object", what, o->string);
    struct ipr_serve_upstream_cfg *u = NULL;
    for (size_t i = 0; i < cfg->n_upstreams; i++)
        if (strcmp(cfg->upstreams[i].model, o->string) == 0)
            u = &cfg->upstreams[i];
    if (!u) {
        void *p = realloc(cfg->upstreams, (cfg->n_upstreams + 1) * sizeof *cfg->upstreams);
        if (!p)
            return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        cfg->upstreams = p;
        u = &cfg->upstreams[cfg->n_upstreams];
        memset(u, 0, sizeof *u);
        if (!(u->model = strdup(o->string)))
            return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        cfg->n_upstreams++;
    }
    const cJSON *v;
    int rc = IPR_OK;
    cJSON_ArrayForEach(v, o) {
        const char *k = v->string;
        if (strcmp(k, "base_url") == 0) rc = take_str(v, &u->base_url, what, "base_url");
        else if (strcmp(k, "api_key_env") == 0) rc = take_str(v, &u->api_key_env, what, "api_key_env");
        else if (strcmp(k, "model") == 0) rc = take_str(v, &u->upstream_model, what, "model");
        else
            return ipr_error_set(IPR_ERR_FORMAT, "%s: upstreams.%s: unknown key '%s'", what, o->string, k);
        if (rc)
            return rc;
    }
    if (!u->base_url)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: upstreams.%s needs a base_url", what, o->string);
    return IPR_OK;
}

int ipr_serve_config_parse(const char *json, size_t len, const char *what, struct ipr_serve_config *cfg)
{
    int rc = IPR_OK;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!cJSON_IsObject(root))
        BAD("%s: not a JSON object (near byte %zu)", what, end ? (size_t)(end - json) : (size_t)0);
    const cJSON *v;
    cJSON_ArrayForEach(v, root) {
        const char *k = v->string;
        if (strcmp(k, "host") == 0) {
            if ((rc = take_str(v, &cfg->host, what, "host"))) goto out;
        } else if (strcmp(k, "port") == 0) {
            double d = 0;
            if ((rc = take_num(v, 0, 65535, &d, what, "port"))) goto out;
            cfg->port = (int)d;
        } else if (strcmp(k, "default_router") == 0) {
            if ((rc = take_str(v, &cfg->default_router, what, "default_router"))) goto out;
        } else if (strcmp(k, "insecure") == 0) {
            if (!cJSON_IsBool(v)) BAD("%s: insecure must be a boolean", what);
            cfg->insecure = cJSON_IsTrue(v);
        } else if (strcmp(k, "routers") == 0) {
            if (!cJSON_IsObject(v)) BAD("%s: routers must be an object {name: {bundle, ...}}", what);
            const cJSON *r;
            cJSON_ArrayForEach(r, v) {
                if (strlen(r->string) == 0 || strlen(r->string) >= IPR_SERVE_NAME_MAX || strchr(r->string, ':'))
                    BAD("%s: router name '%s' must be 1..%d characters without ':'", what, r->string, IPR_SERVE_NAME_MAX - 1);
                struct ipr_serve_router_cfg *rc_ = new_router(cfg, r->string);
                if (!rc_) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
                if ((rc = parse_router(r, rc_, what))) goto out;
            }
        } else if (strcmp(k, "upstreams") == 0) {
            if (!cJSON_IsObject(v)) BAD("%s: upstreams must be an object {model: {base_url, ...}}", what);
            const cJSON *u;
            cJSON_ArrayForEach(u, v)
                if ((rc = parse_upstream(u, cfg, what))) goto out;
        } else if (strcmp(k, "keys") == 0) {
            if (!cJSON_IsArray(v)) BAD("%s: keys must be an array of strings", what);
            const cJSON *kv;
            cJSON_ArrayForEach(kv, v) {
                if (!cJSON_IsString(kv) || strlen(kv->valuestring) < 8)
                    BAD("%s: each key must be a string of at least 8 characters", what);
                void *p = realloc(cfg->keys, (cfg->n_keys + 1) * sizeof *cfg->keys);
                if (!p) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
                cfg->keys = p;
                if (!(cfg->keys[cfg->n_keys] = strdup(kv->valuestring))) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
                cfg->n_keys++;
            }
        } else if (strcmp(k, "limits") == 0) {
            if ((rc = parse_limits(v, &cfg->limits, what))) goto out;
        } else if (strcmp(k, "log") == 0) {
            if (!cJSON_IsObject(v)) BAD("%s: log must be an object {path, batch, flush_s}", what);
            const cJSON *lv;
            cJSON_ArrayForEach(lv, v) {
                double d = 0;
                if (strcmp(lv->string, "path") == 0) {
                    if ((rc = take_str(lv, &cfg->log_path, what, "log.path"))) goto out;
                } else if (strcmp(lv->string, "batch") == 0) {
                    if ((rc = take_num(lv, 1, 100000, &d, what, "log.batch"))) goto out;
                    cfg->log_batch = (unsigned)d;
                } else if (strcmp(lv->string, "flush_s") == 0) {
                    if ((rc = take_num(lv, 0.001, 60, &d, what, "log.flush_s"))) goto out;
                    cfg->log_flush_s = d;
                } else
                    BAD("%s: log: unknown key '%s'", what, lv->string);
            }
        } else {
            BAD("%s: unknown key '%s'", what, k);
        }
    }
out:
    cJSON_Delete(root);
    return rc;
}

int ipr_serve_config_read(const char *path, struct ipr_serve_config *cfg)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ipr_error_set(IPR_ERR_IO, "%s: cannot open config", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            if (cap > (16u << 20)) {
                free(buf);
                fclose(f);
                return ipr_error_set(IPR_ERR_LIMIT, "%s: config larger than 16 MB", path);
            }
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (!p) { free(buf); fclose(f); return ipr_error_set(IPR_ERR_NOMEM, "out of memory"); }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return ipr_error_set(IPR_ERR_IO, "%s: read error", path);
    }
    int rc = ipr_serve_config_parse(buf, len, path, cfg);
    free(buf);
    return rc;
}

int ipr_serve_host_is_loopback(const char *host)
{
    if (!host)
        return 1; /* the default host is 127.0.0.1 */
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcasecmp(host, "localhost") == 0;
}

int ipr_serve_config_check(const struct ipr_serve_config *cfg)
{
    if (cfg->n_routers == 0)
        return ipr_error_set(IPR_ERR_INVAL, "no router to serve: give --router R.ipr or \"routers\" in the config");
    for (size_t i = 0; i < cfg->n_routers; i++)
        if (!cfg->routers[i].bundle)
            return ipr_error_set(IPR_ERR_INVAL, "router '%s' has no bundle", cfg->routers[i].name);
    if (cfg->default_router) {
        size_t i = 0;
        while (i < cfg->n_routers && strcmp(cfg->routers[i].name, cfg->default_router) != 0)
            i++;
        if (i == cfg->n_routers)
            return ipr_error_set(IPR_ERR_INVAL, "default_router '%s' is not among the routers", cfg->default_router);
    }
    if (!ipr_serve_host_is_loopback(cfg->host) && cfg->n_keys == 0 && !cfg->insecure)
        return ipr_error_set(IPR_ERR_INVAL,
                             "refusing to listen on non-loopback address '%s' without client keys "
                             "(add \"keys\" to the config, or pass --insecure)", cfg->host);
    return IPR_OK;
}
