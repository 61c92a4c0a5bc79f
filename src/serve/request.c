/*
 * request.c — parsing of the server's request bodies (untrusted bytes) into
 * routing requests: /v1/route, /v1/chat/completions and /v1/feedback.
 *
 * Every failure sets an HTTP status, an OpenAI-style error type and a message
 * naming the offending field, so the front end can answer with a JSON error
 * and nothing here ever asserts on input. The JSON tree is kept alive in the
 * request because the routed text and model names point into it (no copies on
 * the common path: a "prompt" string or a single-string last user turn).
 */
#include "ipr/serve.h"
#include "ipr/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ipr_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) { p++; continue; }
        size_t n;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if ((size_t)(end - p) <= n) return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        p += n + 1;
    }
    return 1;
}

__attribute__((format(printf, 4, 5)))
static int fail(struct ipr_serve_request *req, int status, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(req->err, sizeof req->err, fmt, ap);
    va_end(ap);
    req->status = status;
    req->err_type = status == 404 ? "not_found_error" : "invalid_request_error";
    return ipr_error_set(code, "%s", req->err);
}

static int parse_unit(struct ipr_serve_request *req, const char *field, const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v))
        return fail(req, 400, IPR_ERR_INVAL, "%s must be a number, got '%s'", field, s);
    *out = v;
    return IPR_OK;
}

static int check_tau(struct ipr_serve_request *req, double tau)
{
    if (!(tau >= 0.0 && tau <= 1.0))
        return fail(req, 400, IPR_ERR_INVAL, "tau must be in [0, 1], got %g", tau);
    return IPR_OK;
}

int ipr_serve_parse_model_spec(const char *spec, struct ipr_serve_request *req)
{
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nlen == 0 || nlen >= sizeof req->router)
        return fail(req, 400, IPR_ERR_INVAL, "model must name a router (e.g. \"ipr\" or \"ipr:tau=0.3\")");
    memcpy(req->router, spec, nlen);
    req->router[nlen] = '\0';
    if (!colon)
        return IPR_OK;
    /* Options "k=v,k=v"; parsed from a bounded copy. */
    char buf[256];
    size_t olen = strlen(colon + 1);
    if (olen >= sizeof buf)
        return fail(req, 400, IPR_ERR_INVAL, "model options too long");
    memcpy(buf, colon + 1, olen + 1);
    char *save = NULL;
    for (char *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return fail(req, 400, IPR_ERR_INVAL, "model option '%s' is not key=value", kv);
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        int rc;
        if (strcmp(k, "tau") == 0) {
            if ((rc = parse_unit(req, "tau", v, &req->tau)) || (rc = check_tau(req, req->tau)))
                return rc;
            req->has_tau = 1;
        } else if (strcmp(k, "delta") == 0) {
            if ((rc = parse_unit(req, "delta", v, &req->delta)))
                return rc;
            if (req->delta < 0)
                return fail(req, 400, IPR_ERR_INVAL, "delta must be >= 0");
            req->has_delta = 1;
        } else if (strcmp(k, "rule") == 0) {
            enum ipr_rule r;
            if (ipr_rule_parse(v, &r) != IPR_OK)
                return fail(req, 400, IPR_ERR_INVAL, "unknown rule '%s' (range, dynmax, difference)", v);
            req->rule = (int)r;
        } else {
            return fail(req, 400, IPR_ERR_INVAL, "unknown model option '%s' (tau, rule, delta)", k);
        }
    }
    return IPR_OK;
}

/* The text of a message's content: a string, or the "text" parts of an array
 * joined by "\n" (into req->text_owned). */
static int content_text(struct ipr_serve_request *req, const cJSON *content, size_t turn)
{
    if (cJSON_IsString(content)) {
        req->text = content->valuestring;
        req->text_len = strlen(content->valuestring);
        return IPR_OK;
    }
    if (!cJSON_IsArray(content))
        return fail(req, 400, IPR_ERR_FORMAT, "messages[%zu].content must be a string or an array of parts", turn);
    size_t total = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type))
            return fail(req, 400, IPR_ERR_FORMAT, "messages[%zu].content parts must be objects with a \"type\"", turn);
        if (strcmp(type->valuestring, "text") == 0) {
            if (!cJSON_IsString(text))
                return fail(req, 400, IPR_ERR_FORMAT, "messages[%zu].content text part needs a string \"text\"", turn);
            total += strlen(text->valuestring) + 1;
        }
    }
    char *buf = malloc(total + 1);
    if (!buf)
        return fail(req, 500, IPR_ERR_NOMEM, "out of memory");
    size_t off = 0;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (strcmp(type->valuestring, "text") != 0)
            continue;
        size_t l = strlen(text->valuestring);
        if (off) buf[off++] = '\n';
        memcpy(buf + off, text->valuestring, l);
        off += l;
    }
    buf[off] = '\0';
    free(req->text_owned);
    req->text_owned = buf;
    req->text = buf;
    req->text_len = off;
    return IPR_OK;
}

static int parse_messages(struct ipr_serve_request *req, const cJSON *msgs)
{
    if (!cJSON_IsArray(msgs))
        return fail(req, 400, IPR_ERR_FORMAT, "messages must be an array");
    size_t i = 0;
    const cJSON *m, *last_user = NULL;
    size_t last_i = 0;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m))
            return fail(req, 400, IPR_ERR_FORMAT, "messages[%zu] must be an object", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role))
            return fail(req, 400, IPR_ERR_FORMAT, "messages[%zu].role must be a string", i);
        if (strcmp(role->valuestring, "user") == 0) {
            last_user = m;
            last_i = i;
        }
        i++;
    }
    if (!last_user)
        return fail(req, 400, IPR_ERR_INVAL, "messages has no user turn to route on");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(last_user, "content");
    return content_text(req, content, last_i);
}

static int parse_options(struct ipr_serve_request *req, const cJSON *o, const char *where)
{
    const cJSON *v;
    int rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "tau"))) {
        if (!cJSON_IsNumber(v))
            return fail(req, 400, IPR_ERR_FORMAT, "%stau must be a number", where);
        if ((rc = check_tau(req, v->valuedouble)))
            return rc;
        req->tau = v->valuedouble;
        req->has_tau = 1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "delta"))) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || !isfinite(v->valuedouble))
            return fail(req, 400, IPR_ERR_INVAL, "%sdelta must be a number >= 0", where);
        req->delta = v->valuedouble;
        req->has_delta = 1;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "rule"))) {
        enum ipr_rule r;
        if (!cJSON_IsString(v))
            return fail(req, 400, IPR_ERR_FORMAT, "%srule must be a string", where);
        if (ipr_rule_parse(v->valuestring, &r) != IPR_OK)
            return fail(req, 400, IPR_ERR_INVAL, "unknown rule '%.40s' (range, dynmax, difference)", v->valuestring);
        req->rule = (int)r;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "models"))) {
        if (!cJSON_IsArray(v))
            return fail(req, 400, IPR_ERR_FORMAT, "%smodels must be an array of model names", where);
        const cJSON *e;
        req->n_models = 0;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsString(e))
                return fail(req, 400, IPR_ERR_FORMAT, "%smodels must be an array of model names", where);
            if (req->n_models >= IPR_MAX_MODELS)
                return fail(req, 400, IPR_ERR_LIMIT, "%smodels lists more than %d names", where, IPR_MAX_MODELS);
            req->models[req->n_models++] = e->valuestring;
        }
        if (req->n_models == 0)
            return fail(req, 400, IPR_ERR_INVAL, "%smodels is empty", where);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "family"))) {
        if (!cJSON_IsString(v))
            return fail(req, 400, IPR_ERR_FORMAT, "%sfamily must be a string", where);
        req->family = v->valuestring;
    }
    return IPR_OK;
}

int ipr_serve_parse_request(enum ipr_serve_kind kind, const char *body, size_t len,
                            struct ipr_serve_request *req)
{
    memset(req, 0, sizeof *req);
    req->rule = -1;
    if (!ipr_utf8_valid(body, len))
        return fail(req, 400, IPR_ERR_FORMAT, "request body is not valid UTF-8");
    if (memchr(body, '\0', len))
        return fail(req, 400, IPR_ERR_FORMAT, "request body contains a NUL byte");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - body) : 0;
        return fail(req, 400, IPR_ERR_FORMAT, "request body is not valid JSON (near byte %zu)", at);
    }
    req->json = root;
    for (const char *p = end; p && p < body + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return fail(req, 400, IPR_ERR_FORMAT, "trailing bytes after the JSON body (byte %zu)", (size_t)(p - body));
    if (!cJSON_IsObject(root))
        return fail(req, 400, IPR_ERR_FORMAT, "request body must be a JSON object");

    int rc;
    const cJSON *v;
    if (kind == IPR_SERVE_ROUTE) {
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(root, "prompt");
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
        if (prompt && msgs)
            return fail(req, 400, IPR_ERR_INVAL, "give either prompt or messages, not both");
        if (prompt) {
            if (!cJSON_IsString(prompt))
                return fail(req, 400, IPR_ERR_FORMAT, "prompt must be a string");
            req->text = prompt->valuestring;
            req->text_len = strlen(prompt->valuestring);
        } else if (msgs) {
            if ((rc = parse_messages(req, msgs)))
                return rc;
        } else {
            return fail(req, 400, IPR_ERR_INVAL, "missing prompt (or messages)");
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(root, "router"))) {
            if (!cJSON_IsString(v))
                return fail(req, 400, IPR_ERR_FORMAT, "router must be a string");
            size_t l = strlen(v->valuestring);
            if (l == 0 || l >= sizeof req->router)
                return fail(req, 404, IPR_ERR_NOTFOUND, "unknown router '%.64s'", v->valuestring);
            memcpy(req->router, v->valuestring, l + 1);
        }
        if ((v = cJSON_GetObjectItemCaseSensitive(root, "explain"))) {
            if (!cJSON_IsBool(v))
                return fail(req, 400, IPR_ERR_FORMAT, "explain must be a boolean");
            req->explain = cJSON_IsTrue(v);
        }
        return parse_options(req, root, "");
    }

    /* chat */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(model))
        return fail(req, 400, IPR_ERR_FORMAT, "model must be a string naming a router (e.g. \"ipr\")");
    if ((rc = ipr_serve_parse_model_spec(model->valuestring, req)))
        return rc;
    if ((rc = parse_messages(req, cJSON_GetObjectItemCaseSensitive(root, "messages"))))
        return rc;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "stream"))) {
        if (!cJSON_IsBool(v) && !cJSON_IsNull(v))
            return fail(req, 400, IPR_ERR_FORMAT, "stream must be a boolean");
        req->stream = cJSON_IsTrue(v);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "ipr"))) {
        if (!cJSON_IsObject(v))
            return fail(req, 400, IPR_ERR_FORMAT, "ipr must be an object of routing options");
        if ((rc = parse_options(req, v, "ipr.")))
            return rc;
    }
    return IPR_OK;
}

void ipr_serve_request_free(struct ipr_serve_request *req)
{
    if (!req)
        return;
    cJSON_Delete(req->json);
    free(req->text_owned);
    req->json = NULL;
    req->text_owned = NULL;
}

int ipr_serve_parse_feedback(const char *body, size_t len, char *id, size_t cap,
                             double *quality, char *err, size_t errcap)
{
    int rc = IPR_ERR_FORMAT;
    cJSON *root = NULL;
    const char *end = NULL;
    if (!ipr_utf8_valid(body, len)) {
        snprintf(err, errcap, "request body is not valid UTF-8");
        goto out;
    }
    root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!cJSON_IsObject(root)) {
        snprintf(err, errcap, "request body must be a JSON object");
        goto out;
    }
    const cJSON *vid = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *vq = cJSON_GetObjectItemCaseSensitive(root, "quality");
    if (!cJSON_IsString(vid) || vid->valuestring[0] == '\0' || strlen(vid->valuestring) >= cap) {
        snprintf(err, errcap, "id must be a non-empty string (a request id from x-ipr-request-id)");
        goto out;
    }
    if (!cJSON_IsNumber(vq)) {
        snprintf(err, errcap, "quality must be a number in [0, 1]");
        goto out;
    }
    if (!(vq->valuedouble >= 0.0 && vq->valuedouble <= 1.0)) {
        snprintf(err, errcap, "quality must be in [0, 1], got %g", vq->valuedouble);
        rc = IPR_ERR_INVAL;
        goto out;
    }
    strcpy(id, vid->valuestring);
    *quality = vq->valuedouble;
    rc = IPR_OK;
out:
    cJSON_Delete(root);
    if (rc != IPR_OK)
        ipr_error_set(rc, "%s", err);
    return rc;
}
