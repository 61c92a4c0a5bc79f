/*
 * jsonl.c — the canonical dataset's JSON Lines reader and writer (DESIGN.md §2).
 *
 * Reader: the whole file is read (gunzipped if needed) and parsed line by line
 * with cJSON. Every rejection names the file and the 1-based line:
 *   "PATH:LINE: what". Blank lines are skipped. A last line without a newline
 * is accepted when it is a complete JSON object, and reported as "file ends
 * mid-line" otherwise. Unknown keys are ignored (forward compatibility).
 *
 * Writer: one object per line, keys in the order id, prompt, task, scores,
 * costs; absent labels and costs are left out, except on the first line, where
 * every model column is listed (null when absent) so that the model columns
 * and their order survive a write/read round trip. Numbers are printed with
 * the fewest digits that read back to the same double.
 */
#include "ipr/data.h"
#include "ipr/err.h"
#include "ipr/io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Returns the byte offset of the first invalid UTF-8 sequence, or -1. */
static long utf8_invalid_at(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) return (long)i;
        i += (size_t)k;
    }
    return -1;
}

static int is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* A string field: NULL when absent or null (sets *present = 0), error when of
 * another type or not valid UTF-8 after unescaping. */
static int get_string(const cJSON *obj, const char *key, const char *name, size_t line,
                      const char **out)
{
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return IPR_OK;
    if (!cJSON_IsString(v) || !v->valuestring)
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: field \"%s\" must be a string", name, line, key);
    if (utf8_invalid_at(v->valuestring, strlen(v->valuestring)) >= 0)
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: field \"%s\" is not valid UTF-8", name, line, key);
    *out = v->valuestring;
    return IPR_OK;
}

/* Reads the {model: number|null} object `key` into row r of `which`
 * (scores or costs). Scores must lie in [0,1], costs be finite and >= 0. */
static int get_values(struct ipr_dataset *ds, const cJSON *obj, const char *key, int is_score,
                      size_t r, const char *name, size_t line)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!o || cJSON_IsNull(o)) {
        if (is_score)
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: missing field \"scores\"", name, line);
        return IPR_OK;
    }
    if (!cJSON_IsObject(o))
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: field \"%s\" must be an object {model: number}", name, line, key);
    const cJSON *v;
    cJSON_ArrayForEach(v, o) {
        const char *model = v->string;
        if (!model || !*model)
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: empty model name in \"%s\"", name, line, key);
        if (utf8_invalid_at(model, strlen(model)) >= 0)
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: model name in \"%s\" is not valid UTF-8", name, line, key);
        int m = ipr_dataset_add_model(ds, model);
        if (m < 0) return ipr_error_wrap(m, "%s:%zu", name, line);
        if (cJSON_IsNull(v)) continue;
        if (!cJSON_IsNumber(v))
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: %s of \"%s\" must be a number or null", name, line,
                                 is_score ? "score" : "cost", model);
        double x = v->valuedouble;
        double *cell = is_score ? ipr_dataset_score(ds, r, (size_t)m) : ipr_dataset_cost(ds, r, (size_t)m);
        if (!isnan(*cell))
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: model \"%s\" appears twice in \"%s\"", name, line, model, key);
        if (is_score && !(x >= 0.0 && x <= 1.0))
            return ipr_error_set(IPR_ERR_INVAL, "%s:%zu: score %g of \"%s\" is outside [0,1]", name, line, x, model);
        if (!is_score && !(x >= 0.0 && isfinite(x)))
            return ipr_error_set(IPR_ERR_INVAL, "%s:%zu: cost %g of \"%s\" must be a finite number >= 0", name, line, x, model);
        *cell = x;
    }
    return IPR_OK;
}

static int parse_line(struct ipr_dataset *ds, const char *s, size_t len, int last_unterminated,
                      const char *name, size_t line, size_t **first_line)
{
    long bad = utf8_invalid_at(s, len);
    if (bad >= 0)
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: invalid UTF-8 at byte %ld of the line", name, line, bad + 1);
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (!obj) {
        if (last_unterminated)
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: file ends mid-line (incomplete JSON, no final newline)", name, line);
        size_t col = end && end >= s && end <= s + len ? (size_t)(end - s) + 1 : 1;
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: malformed JSON near column %zu", name, line, col);
    }
    int rc = IPR_OK;
    if (end && !is_blank(end, len - (size_t)(end - s))) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: extra characters after the JSON object at column %zu",
                           name, line, (size_t)(end - s) + 1);
        goto out;
    }
    if (!cJSON_IsObject(obj)) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: expected a JSON object", name, line);
        goto out;
    }
    const char *id, *prompt, *task;
    if ((rc = get_string(obj, "id", name, line, &id))) goto out;
    if ((rc = get_string(obj, "prompt", name, line, &prompt))) goto out;
    if ((rc = get_string(obj, "task", name, line, &task))) goto out;
    if (!id || !*id) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: missing field \"id\"", name, line); goto out; }
    if (!prompt) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: missing field \"prompt\"", name, line); goto out; }
    if (!cJSON_GetObjectItemCaseSensitive(obj, "scores")) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: missing field \"scores\"", name, line);
        goto out;
    }
    long r = ipr_dataset_add(ds, id, prompt, task);
    if (r < 0) {
        if (r == IPR_ERR_INVAL) {
            int first = -1;
            /* find the earlier row only on this error path: linear is fine */
            for (size_t i = 0; i < ds->n; i++)
                if (strcmp(ds->prompts[i].id, id) == 0) { first = (int)i; break; }
            rc = ipr_error_set(IPR_ERR_INVAL, "%s:%zu: duplicate id \"%s\" (first on line %zu)", name, line, id,
                               first >= 0 ? (*first_line)[first] : 0);
        } else {
            rc = ipr_error_wrap((int)r, "%s:%zu", name, line);
        }
        goto out;
    }
    if (ds->n > 0 && ds->n - 1 == (size_t)r) {
        /* remember which line each row came from, for duplicate reports */
        static const size_t chunk = 1024;
        if ((size_t)r % chunk == 0) {
            size_t *nl = realloc(*first_line, ((size_t)r + chunk) * sizeof *nl);
            if (!nl) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
            *first_line = nl;
        }
        (*first_line)[r] = line;
    }
    if ((rc = get_values(ds, obj, "scores", 1, (size_t)r, name, line))) goto out;
    rc = get_values(ds, obj, "costs", 0, (size_t)r, name, line);
out:
    cJSON_Delete(obj);
    return rc;
}

int ipr_dataset_parse(const char *buf, size_t len, const char *name, struct ipr_dataset **out)
{
    *out = NULL;
    if (!name) name = "(buffer)";
    struct ipr_dataset *ds = ipr_dataset_new();
    if (!ds) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    size_t *first_line = NULL;
    size_t line = 0, pos = 0;
    int rc = IPR_OK;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    while (pos < len) {
        line++;
        const char *s = buf + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t l = nl ? (size_t)(nl - s) : len - pos;
        pos += l + (nl ? 1 : 0);
        if (l > 0 && s[l - 1] == '\r') l--;
        if (is_blank(s, l)) continue;
        rc = parse_line(ds, s, l, nl == NULL, name, line, &first_line);
        if (rc) break;
    }
    free(first_line);
    if (rc == IPR_OK && ds->n == 0)
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: empty file: no prompts", name, line ? line : 1);
    if (rc) { ipr_dataset_free(ds); return rc; }
    *out = ds;
    return IPR_OK;
}

int ipr_dataset_read(const char *path, struct ipr_dataset **out)
{
    *out = NULL;
    char *buf; size_t len;
    int rc = ipr_file_read(path, &buf, &len);
    if (rc) return rc;
    rc = ipr_dataset_parse(buf, len, path, out);
    free(buf);
    return rc;
}

/* --- writer --- */

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Shortest of %.15g..%.17g that reads back to the same double. */
static void put_number(FILE *f, double x)
{
    char b[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, x);
        if (strtod(b, NULL) == x) break;
    }
    fputs(b, f);
}

static void put_values(FILE *f, const struct ipr_dataset *ds, size_t i, const double *row, int all)
{
    fputc('{', f);
    int first = 1;
    for (size_t m = 0; m < ds->n_models; m++) {
        double x = row[m];
        if (isnan(x) && !all) continue;
        if (!first) fputs(", ", f);
        first = 0;
        put_string(f, ds->models[m]);
        fputs(": ", f);
        if (isnan(x)) fputs("null", f);
        else put_number(f, x);
    }
    (void)i;
    fputc('}', f);
}

char *ipr_dataset_to_jsonl(const struct ipr_dataset *ds, size_t *len_out)
{
    char *buf = NULL; size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    for (size_t i = 0; i < ds->n; i++) {
        const struct ipr_prompt *p = &ds->prompts[i];
        const double *sc = ds->scores + i * ds->n_models, *co = ds->costs + i * ds->n_models;
        fputs("{\"id\": ", f); put_string(f, p->id);
        fputs(", \"prompt\": ", f); put_string(f, p->text);
        if (p->task) { fputs(", \"task\": ", f); put_string(f, p->task); }
        fputs(", \"scores\": ", f); put_values(f, ds, i, sc, i == 0);
        int any_cost = 0;
        for (size_t m = 0; m < ds->n_models; m++) if (!isnan(co[m])) any_cost = 1;
        if (any_cost) { fputs(", \"costs\": ", f); put_values(f, ds, i, co, 0); }
        fputs("}\n", f);
    }
    if (fclose(f) != 0 || !buf) { free(buf); return NULL; }
    if (len_out) *len_out = len;
    return buf;
}

int ipr_dataset_write(const struct ipr_dataset *ds, const char *path)
{
    size_t len;
    char *buf = ipr_dataset_to_jsonl(ds, &len);
    if (!buf) return ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path);
    int rc = ipr_file_write(path, buf, len);
    free(buf);
    return rc;
}
