/*
 * registry.c — the model registry (data.h, DESIGN.md §2): parse, validate,
 * serialise, copy. The registry is one JSON document:
 *   {"models": [{"name": "gpt-4", "family": "openai", "price_in": 10,
 *                "price_out": 30, "mean_out_tokens": 250,
 *                "upstream": {"base_url": "...", "api_key_env": "...", "model": "..."}}],
 *    "fallback": "gpt-4"}
 * Required per model: name (non-empty, unique), price_in and price_out (USD
 * per 1M tokens, finite, >= 0). Optional: family, mean_out_tokens (default 0,
 * finite, >= 0), upstream (base_url required inside it). "fallback", when
 * given, must name a model. Errors name the file and, for a syntax error, the
 * line; for a bad model, its index and name.
 */
#include "ipr/data.h"
#include "ipr/err.h"
#include "ipr/io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void model_free(struct ipr_model_info *m)
{
    free(m->name); free(m->family);
    free(m->upstream.base_url); free(m->upstream.api_key_env); free(m->upstream.model);
}

void ipr_registry_free(struct ipr_registry *reg)
{
    if (!reg) return;
    for (size_t i = 0; i < reg->n; i++) model_free(&reg->models[i]);
    free(reg->models);
    free(reg->fallback);
    free(reg);
}

int ipr_registry_find(const struct ipr_registry *reg, const char *name)
{
    if (!reg || !name) return -1;
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->models[i].name, name) == 0) return (int)i;
    return -1;
}

/* Optional string member: absent/null -> NULL; wrong type -> error. */
static int opt_string(const cJSON *o, const char *key, const char *what, size_t i, char **out)
{
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return IPR_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu]: \"%s\" must be a string", what, i, key);
    *out = dup_str(v->valuestring);
    return *out ? IPR_OK : ipr_error_set(IPR_ERR_NOMEM, "out of memory");
}

static int get_number(const cJSON *o, const char *key, int required, const char *what, size_t i,
                      const char *name, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu] (\"%s\"): missing \"%s\"", what, i, name, key);
        *out = 0;
        return IPR_OK;
    }
    if (!cJSON_IsNumber(v))
        return ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu] (\"%s\"): \"%s\" must be a number", what, i, name, key);
    if (!(v->valuedouble >= 0) || !isfinite(v->valuedouble))
        return ipr_error_set(IPR_ERR_INVAL, "%s: models[%zu] (\"%s\"): \"%s\" is %g; it must be finite and >= 0",
                             what, i, name, key, v->valuedouble);
    *out = v->valuedouble;
    return IPR_OK;
}

static size_t line_of(const char *json, size_t len, const char *at)
{
    size_t line = 1;
    if (!at || at < json || at > json + len) return 0;
    for (const char *p = json; p < at; p++) if (*p == '\n') line++;
    return line;
}

int ipr_registry_parse(const char *json, size_t len, const char *what, struct ipr_registry **out)
{
    *out = NULL;
    if (!what) what = "registry";
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        const char *rest = end && end >= json && end < json + len ? end : json + len;
        while (rest < json + len && (*rest == ' ' || *rest == '\n' || *rest == '\r' || *rest == '\t')) rest++;
        if (rest >= json + len)
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: malformed JSON (empty or truncated)", what, line_of(json, len, json + len));
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: malformed JSON", what, line_of(json, len, end));
    }
    int rc = IPR_OK;
    struct ipr_registry *reg = calloc(1, sizeof *reg);
    if (!reg) { cJSON_Delete(root); return ipr_error_set(IPR_ERR_NOMEM, "out of memory"); }
    for (const char *p = end; p && p < json + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t' && *p != '\0') {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: extra characters after the JSON document", what, line_of(json, len, p));
            goto err;
        }
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsObject(root) || !cJSON_IsArray(models)) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: expected {\"models\": [...], \"fallback\": NAME}", what);
        goto err;
    }
    int n = cJSON_GetArraySize(models);
    if (n <= 0) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: \"models\" is empty", what); goto err; }
    reg->models = calloc((size_t)n, sizeof *reg->models);
    if (!reg->models) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto err; }
    const cJSON *mo;
    cJSON_ArrayForEach(mo, models) {
        size_t i = reg->n;
        struct ipr_model_info *m = &reg->models[i];
        if (!cJSON_IsObject(mo)) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu] is not an object", what, i); goto err; }
        reg->n++;
        if ((rc = opt_string(mo, "name", what, i, &m->name))) goto err;
        if (!m->name || !*m->name) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu]: missing \"name\"", what, i); goto err; }
        for (size_t j = 0; j < i; j++)
            if (strcmp(reg->models[j].name, m->name) == 0) {
                rc = ipr_error_set(IPR_ERR_INVAL, "%s: models[%zu]: duplicate model \"%s\" (also models[%zu])", what, i, m->name, j);
                goto err;
            }
        if ((rc = opt_string(mo, "family", what, i, &m->family))) goto err;
        if ((rc = get_number(mo, "price_in", 1, what, i, m->name, &m->price_in))) goto err;
        if ((rc = get_number(mo, "price_out", 1, what, i, m->name, &m->price_out))) goto err;
        if ((rc = get_number(mo, "mean_out_tokens", 0, what, i, m->name, &m->mean_out_tokens))) goto err;
        const cJSON *up = cJSON_GetObjectItemCaseSensitive(mo, "upstream");
        if (up && !cJSON_IsNull(up)) {
            if (!cJSON_IsObject(up)) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu] (\"%s\"): \"upstream\" must be an object", what, i, m->name); goto err; }
            if ((rc = opt_string(up, "base_url", what, i, &m->upstream.base_url))) goto err;
            if ((rc = opt_string(up, "api_key_env", what, i, &m->upstream.api_key_env))) goto err;
            if ((rc = opt_string(up, "model", what, i, &m->upstream.model))) goto err;
            if (!m->upstream.base_url || !*m->upstream.base_url) {
                rc = ipr_error_set(IPR_ERR_FORMAT, "%s: models[%zu] (\"%s\"): upstream without \"base_url\"", what, i, m->name);
                goto err;
            }
            m->has_upstream = 1;
        }
    }
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(root, "fallback");
    if (fb && !cJSON_IsNull(fb)) {
        if (!cJSON_IsString(fb) || !fb->valuestring) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s: \"fallback\" must be a model name", what); goto err; }
        if (ipr_registry_find(reg, fb->valuestring) < 0) {
            rc = ipr_error_set(IPR_ERR_NOTFOUND, "%s: fallback \"%s\" is not one of the models", what, fb->valuestring);
            goto err;
        }
        if (!(reg->fallback = dup_str(fb->valuestring))) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto err; }
    }
    cJSON_Delete(root);
    *out = reg;
    return IPR_OK;
err:
    cJSON_Delete(root);
    ipr_registry_free(reg);
    return rc;
}

int ipr_registry_read(const char *path, struct ipr_registry **out)
{
    *out = NULL;
    char *buf; size_t len;
    int rc = ipr_file_read(path, &buf, &len);
    if (rc) return rc;
    rc = ipr_registry_parse(buf, len, path, out);
    free(buf);
    return rc;
}

static cJSON *to_cjson(const struct ipr_registry *reg)
{
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "models");
    if (!root || !arr) goto err;
    for (size_t i = 0; i < reg->n; i++) {
        const struct ipr_model_info *m = &reg->models[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) goto err;
        cJSON_AddItemToArray(arr, o);
        if (!cJSON_AddStringToObject(o, "name", m->name)) goto err;
        if (m->family && !cJSON_AddStringToObject(o, "family", m->family)) goto err;
        if (!cJSON_AddNumberToObject(o, "price_in", m->price_in)) goto err;
        if (!cJSON_AddNumberToObject(o, "price_out", m->price_out)) goto err;
        if (!cJSON_AddNumberToObject(o, "mean_out_tokens", m->mean_out_tokens)) goto err;
        if (m->has_upstream) {
            cJSON *u = cJSON_AddObjectToObject(o, "upstream");
            if (!u) goto err;
            if (m->upstream.base_url && !cJSON_AddStringToObject(u, "base_url", m->upstream.base_url)) goto err;
            if (m->upstream.api_key_env && !cJSON_AddStringToObject(u, "api_key_env", m->upstream.api_key_env)) goto err;
            if (m->upstream.model && !cJSON_AddStringToObject(u, "model", m->upstream.model)) goto err;
        }
    }
    if (reg->fallback) { if (!cJSON_AddStringToObject(root, "fallback", reg->fallback)) goto err; }
    else if (!cJSON_AddNullToObject(root, "fallback")) goto err;
    return root;
err:
    cJSON_Delete(root);
    return NULL;
}

char *ipr_registry_to_json(const struct ipr_registry *reg)
{
    cJSON *root = to_cjson(reg);
    if (!root) return NULL;
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

int ipr_registry_write(const struct ipr_registry *reg, const char *path)
{
    char *s = ipr_registry_to_json(reg);
    if (!s) return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(s);
    char *t = malloc(n + 2);
    if (!t) { cJSON_free(s); return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path); }
    memcpy(t, s, n); t[n] = '\n'; t[n + 1] = '\0';
    cJSON_free(s);
    int rc = ipr_file_write(path, t, n + 1);
    free(t);
    return rc;
}

int ipr_registry_copy(const struct ipr_registry *reg, struct ipr_registry **out)
{
    *out = NULL;
    struct ipr_registry *r = calloc(1, sizeof *r);
    if (!r) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    if (reg->n) {
        r->models = calloc(reg->n, sizeof *r->models);
        if (!r->models) goto nomem;
    }
    for (size_t i = 0; i < reg->n; i++) {
        const struct ipr_model_info *a = &reg->models[i];
        struct ipr_model_info *b = &r->models[i];
        r->n++;
        *b = *a;
        b->name = dup_str(a->name);
        b->family = dup_str(a->family);
        b->upstream.base_url = dup_str(a->upstream.base_url);
        b->upstream.api_key_env = dup_str(a->upstream.api_key_env);
        b->upstream.model = dup_str(a->upstream.model);
        if ((a->name && !b->name) || (a->family && !b->family) ||
            (a->upstream.base_url && !b->upstream.base_url) ||
            (a->upstream.api_key_env && !b->upstream.api_key_env) ||
            (a->upstream.model && !b->upstream.model)) goto nomem;
    }
    if (reg->fallback && !(r->fallback = dup_str(reg->fallback))) goto nomem;
    *out = r;
    return IPR_OK;
nomem:
    ipr_registry_free(r);
    return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
}

double ipr_registry_expected_cost(const struct ipr_registry *reg, size_t m, size_t in_tokens)
{
    if (!reg || m >= reg->n) return NAN;
    const struct ipr_model_info *mi = &reg->models[m];
    return (double)in_tokens * mi->price_in / 1e6 + mi->mean_out_tokens * mi->price_out / 1e6;
}
