/*
 * import_json.c — RouterDC and LLMRouter importers. Both ship a JSON array
 * of {"question": TEXT, "scores": {model: score}, "cluster_id"?: N}.
 *
 * id   = "<file stem>.<row>" (row 0-based in the array);
 * task = RouterDC: the file stem without a train/test suffix ("mmlu_train" ->
 *        "mmlu", "gsm8k-test" -> "gsm8k"); LLMRouter: "llmrouter" (its files
 *        mix sources and carry no task name; cluster_id exists only in train).
 * Scores: numbers in [0,1] as is (RouterDC has fractions), true/false as 1/0,
 * null = no label; anything else is an error naming the file, the line where
 * the item starts and the item's index.
 */
#include "ipr/data.h"
#include "ipr/err.h"
#include "data/import_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Line of each top-level array element's start, found by a small scan that
 * tracks strings and nesting (cJSON keeps no positions). Returns a malloc'd
 * array of n_items lines (missing entries 0), or NULL. */
static size_t *item_lines(const char *s, size_t len, size_t n_items)
{
    size_t *lines = calloc(n_items ? n_items : 1, sizeof *lines);
    if (!lines) return NULL;
    size_t line = 1, depth = 0, item = 0;
    int in_str = 0, expect = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\n') line++;
        if (in_str) {
            if (ch == '\\') { if (i + 1 < len && s[i + 1] == '\n') line++; i++; }
            else if (ch == '"') in_str = 0;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
        if (depth == 1 && expect) {
            if (item < n_items) lines[item] = line;
            item++;
            expect = 0;
        }
        if (ch == '"') in_str = 1;
        else if (ch == '[' || ch == '{') { depth++; if (depth == 1) expect = 1; }
        else if (ch == ']' || ch == '}') { if (depth) depth--; }
        else if (ch == ',' && depth == 1) expect = 1;
    }
    return lines;
}

static size_t line_at(const char *s, size_t len, const char *at)
{
    size_t line = 1;
    if (!at || at < s) return 1;
    if (at > s + len) at = s + len;
    for (const char *p = s; p < at; p++) if (*p == '\n') line++;
    return line;
}

static void task_of_stem(const char *stem, char *out, size_t cap)
{
    snprintf(out, cap, "%s", stem);
    static const char *const suffixes[] = { "_train", "_test", "-train", "-test", "_val", "-val", "_dev", "-dev" };
    size_t n = strlen(out);
    for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++) {
        size_t l = strlen(suffixes[k]);
        if (n > l && strcmp(out + n - l, suffixes[k]) == 0) { out[n - l] = '\0'; return; }
    }
}

int import_json_scores(struct ipr_dataset *ds, enum ipr_import_format fmt,
                       const char *buf, size_t len, const char *name)
{
    if (!import_utf8_ok(buf, len)) {
        size_t i = 0;
        while (i < len) {
            size_t j = i;
            while (j < len && buf[j] != '\n') j++;
            if (!import_utf8_ok(buf + i, j - i)) break;
            i = j + 1;
        }
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: invalid UTF-8", name, line_at(buf, len, buf + i));
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t k = 0;
        while (k < len && (buf[k] == ' ' || buf[k] == '\n' || buf[k] == '\r' || buf[k] == '\t')) k++;
        if (k == len) return ipr_error_set(IPR_ERR_FORMAT, "%s:1: empty file", name);
        const char *rest = end && end >= buf && end < buf + len ? end : buf + len;
        while (rest < buf + len && (*rest == ' ' || *rest == '\n' || *rest == '\r' || *rest == '\t')) rest++;
        if (rest >= buf + len)
            return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: file ends inside the JSON document (truncated)", name,
                                 line_at(buf, len, buf + len));
        return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: malformed JSON", name, line_at(buf, len, end));
    }
    int rc = IPR_OK;
    size_t *lines = NULL;
    for (const char *p = end; p && p < buf + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: extra characters after the JSON array", name, line_at(buf, len, p));
            goto out;
        }
    if (!cJSON_IsArray(root)) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:1: expected a JSON array of {\"question\", \"scores\"}", name);
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(root);
    if (n == 0) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s:1: the array is empty: no prompts", name); goto out; }
    lines = item_lines(buf, len, n);
    if (!lines) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
    char stem[256], task[256], id[320];
    import_stem(name, stem, sizeof stem);
    if (fmt == IPR_IMPORT_LLMROUTER) snprintf(task, sizeof task, "llmrouter");
    else task_of_stem(stem, task, sizeof task);
    size_t row = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        size_t line = lines[row];
        if (!cJSON_IsObject(it)) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: item %zu is not an object", name, line, row);
            goto out;
        }
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(it, "question");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(it, "scores");
        if (!cJSON_IsString(q) || !q->valuestring) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: item %zu: missing string field \"question\"", name, line, row);
            goto out;
        }
        if (!cJSON_IsObject(sc)) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: item %zu: missing object field \"scores\"", name, line, row);
            goto out;
        }
        if (!import_utf8_ok(q->valuestring, strlen(q->valuestring))) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: item %zu: question is not valid UTF-8", name, line, row);
            goto out;
        }
        snprintf(id, sizeof id, "%s.%zu", stem, row);
        long r = ipr_dataset_add(ds, id, q->valuestring, task);
        if (r < 0) { rc = ipr_error_wrap((int)r, "%s:%zu: item %zu", name, line, row); goto out; }
        const cJSON *v;
        cJSON_ArrayForEach(v, sc) {
            if (!v->string || !*v->string || !import_utf8_ok(v->string, strlen(v->string))) {
                rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: item %zu: empty or invalid model name", name, line, row);
                goto out;
            }
            int m = ipr_dataset_add_model(ds, v->string);
            if (m < 0) { rc = ipr_error_wrap(m, "%s:%zu", name, line); goto out; }
            double x;
            if (cJSON_IsNull(v)) continue;
            if (cJSON_IsBool(v)) x = cJSON_IsTrue(v) ? 1.0 : 0.0;
            else if (cJSON_IsNumber(v)) x = v->valuedouble;
            else {
                rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: item %zu: score of \"%s\" is not a number", name, line, row, v->string);
                goto out;
            }
            if (!(x >= 0 && x <= 1)) {
                rc = ipr_error_set(IPR_ERR_INVAL, "%s:%zu: item %zu: score %g of \"%s\" is outside [0,1]", name, line, row, x, v->string);
                goto out;
            }
            *ipr_dataset_score(ds, (size_t)r, (size_t)m) = x;
        }
        row++;
    }
out:
    free(lines);
    cJSON_Delete(root);
    return rc;
}
