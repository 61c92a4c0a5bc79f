/*
 * import.c — the importers' entry points and the RouterBench CSV importer.
 *
 * RouterBench (the CSV files of RouterDC's routerbench_zs folder): RFC 4180 CSV, quoted cells
 * may hold commas, doubled quotes and newlines. Columns: an unnamed row index,
 * sample_id, prompt, eval_name, one label column per model, "<model>|
 * model_response" (dropped), "<model>|total_cost" (USD per query) and
 * oracle_model_to_route_to (dropped). The prompt cell is a Python list literal
 * of strings, e.g. ['Line one\nline two', "it's"]; its elements are unescaped
 * as Python would and joined with "\n". An empty label or cost cell is "no
 * label"/"unknown". A sample_id already present in the dataset gets the row
 * index appended ("arc-challenge.val.172#385"), so every row is kept and ids
 * stay unique; the first occurrence keeps the plain id.
 */
#include "ipr/data.h"
#include "ipr/err.h"
#include "ipr/io.h"
#include "data/import_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void import_stem(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 3 && strcmp(b + n - 3, ".gz") == 0) n -= 3;
    for (size_t i = n; i > 0; i--)
        if (b[i - 1] == '.') { if (i - 1 > 0) n = i - 1; break; }
    if (n >= cap) n = cap - 1;
    memcpy(out, b, n);
    out[n] = '\0';
}

int import_utf8_ok(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if ((unsigned char)s[i] < 0x80) { i++; continue; }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* --- growable byte buffer --- */

struct sbuf { char *p; size_t n, cap; };

static int sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return IPR_ERR_NOMEM;
        b->p = p; b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return IPR_OK;
}

static int sb_putc(struct sbuf *b, char c) { return sb_put(b, &c, 1); }

static int sb_put_cp(struct sbuf *b, long cp)
{
    utf8proc_uint8_t u[4];
    if (cp < 0 || !utf8proc_codepoint_valid((utf8proc_int32_t)cp)) return IPR_ERR_FORMAT;
    utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)cp, u);
    return sb_put(b, (const char *)u, (size_t)k);
}

/* --- CSV --- */

struct csv {
    const char *buf, *name;
    size_t len, pos, line;   /* line: current physical line, 1-based */
    struct sbuf *cells;      /* (cap_cells) cell buffers of the current record */
    size_t n_cells, cap_cells;
};

/* Reads one record into c->cells. Returns 1 when a record was read, 0 at end
 * of input, or a negative ipr_err. *rec_line receives its first line. */
static int csv_record(struct csv *c, size_t *rec_line)
{
    if (c->pos >= c->len) return 0;
    *rec_line = c->line;
    c->n_cells = 0;
    for (;;) { /* one cell per iteration */
        if (c->n_cells == c->cap_cells) {
            size_t cap = c->cap_cells ? c->cap_cells * 2 : 64;
            if (cap > 100000) return ipr_error_set(IPR_ERR_LIMIT, "%s:%zu: too many cells in a record", c->name, *rec_line);
            struct sbuf *nc = realloc(c->cells, cap * sizeof *nc);
            if (!nc) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
            memset(nc + c->cap_cells, 0, (cap - c->cap_cells) * sizeof *nc);
            c->cells = nc; c->cap_cells = cap;
        }
        struct sbuf *cell = &c->cells[c->n_cells++];
        cell->n = 0;
        if (sb_put(cell, "", 0)) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        if (c->pos < c->len && c->buf[c->pos] == '"') {
            size_t qline = c->line;
            c->pos++;
            for (;;) {
                if (c->pos >= c->len)
                    return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: file ends inside a quoted cell opened on this line",
                                         c->name, qline);
                const char *s = c->buf + c->pos;
                const char *q = memchr(s, '"', c->len - c->pos);
                size_t run = q ? (size_t)(q - s) : c->len - c->pos;
                for (size_t k = 0; k < run; k++) if (s[k] == '\n') c->line++;
                if (sb_put(cell, s, run)) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
                c->pos += run;
                if (!q) continue;
                c->pos++; /* the quote */
                if (c->pos < c->len && c->buf[c->pos] == '"') {
                    if (sb_putc(cell, '"')) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
                    c->pos++;
                    continue;
                }
                break;
            }
            if (c->pos < c->len && c->buf[c->pos] != ',' && c->buf[c->pos] != '\n' &&
                !(c->buf[c->pos] == '\r' && c->pos + 1 < c->len && c->buf[c->pos + 1] == '\n'))
                return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: unexpected character after a closing quote (cell %zu)",
                                     c->name, c->line, c->n_cells);
        } else {
            size_t start = c->pos;
            while (c->pos < c->len && c->buf[c->pos] != ',' && c->buf[c->pos] != '\n') {
                if (c->buf[c->pos] == '"')
                    return ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: quote inside an unquoted cell (cell %zu)",
                                         c->name, c->line, c->n_cells);
                c->pos++;
            }
            size_t n = c->pos - start;
            if (n > 0 && c->buf[start + n - 1] == '\r' && (c->pos >= c->len || c->buf[c->pos] == '\n')) n--;
            if (sb_put(cell, c->buf + start, n)) return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        }
        if (c->pos >= c->len) return 1;
        if (c->buf[c->pos] == '\r') c->pos++;
        if (c->buf[c->pos] == ',') { c->pos++; continue; }
        /* newline: end of record */
        c->pos++;
        c->line++;
        return 1;
    }
}

/* --- Python string list literal --- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Parses one Python string literal at s[*i] (optional u/U prefix, r/R for
 * raw) and appends its value. Returns 0 or a static message. */
static const char *py_string(const char *s, size_t n, size_t *i, struct sbuf *out)
{
    int raw = 0;
    while (*i < n && strchr("uUrR", s[*i]) && s[*i]) { if (s[*i] == 'r' || s[*i] == 'R') raw = 1; (*i)++; }
    if (*i >= n || (s[*i] != '\'' && s[*i] != '"')) return "expected a quoted string";
    char q = s[(*i)++];
    int triple = 0;
    if (*i + 1 < n && s[*i] == q && s[*i + 1] == q) { triple = 1; *i += 2; }
    for (;;) {
        if (*i >= n) return "unterminated string";
        char ch = s[*i];
        if (ch == q) {
            if (!triple) { (*i)++; return NULL; }
            if (*i + 2 < n && s[*i + 1] == q && s[*i + 2] == q) { *i += 3; return NULL; }
            if (sb_putc(out, ch)) return "out of memory";
            (*i)++;
            continue;
        }
        if (ch == '\n' && !triple) return "newline inside a string";
        if (ch != '\\' || raw) {
            if (raw && ch == '\\' && *i + 1 < n) { /* raw: backslash kept, next char taken */
                if (sb_put(out, s + *i, 2)) return "out of memory";
                *i += 2;
                continue;
            }
            if (sb_putc(out, ch)) return "out of memory";
            (*i)++;
            continue;
        }
        if (*i + 1 >= n) return "unterminated escape";
        char e = s[*i + 1];
        *i += 2;
        long cp = -1;
        int digits = 0;
        switch (e) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case '\\': cp = '\\'; break;
        case '\'': cp = '\''; break;
        case '"': cp = '"'; break;
        case 'a': cp = 7; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'v': cp = 11; break;
        case '\n': continue; /* line continuation */
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                cp = e - '0';
                for (int k = 0; k < 2 && *i < n && s[*i] >= '0' && s[*i] <= '7'; k++) cp = cp * 8 + (s[(*i)++] - '0');
            } else { /* unknown escape: Python keeps the backslash */
                if (sb_putc(out, '\\') || sb_putc(out, e)) return "out of memory";
                continue;
            }
        }
        if (digits) {
            if (*i + (size_t)digits > n) return "truncated \\x/\\u escape";
            cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = hexval(s[*i + (size_t)k]);
                if (h < 0) return "bad hex digit in a \\x/\\u escape";
                cp = cp * 16 + h;
            }
            *i += (size_t)digits;
            if (cp > 0x10ffff) return "code point out of range";
        }
        int rc = sb_put_cp(out, cp);
        if (rc == IPR_ERR_FORMAT) return "escape is not a valid Unicode scalar (surrogate?)";
        if (rc) return "out of memory";
    }
}

static void skip_ws(const char *s, size_t n, size_t *i)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r')) (*i)++;
}

/* Decodes a prompt cell into out. A cell that does not start with '[' is
 * taken verbatim (some exports store plain text). */
static const char *py_list(const char *s, size_t n, struct sbuf *out)
{
    size_t i = 0;
    skip_ws(s, n, &i);
    if (i >= n || s[i] != '[') {
        return sb_put(out, s, n) ? "out of memory" : NULL;
    }
    i++;
    int count = 0;
    for (;;) {
        skip_ws(s, n, &i);
        if (i < n && s[i] == ']') { i++; break; }
        if (count > 0) {
            if (i >= n || s[i] != ',') return "expected ',' or ']' in the prompt list";
            i++;
            skip_ws(s, n, &i);
            if (i < n && s[i] == ']') { i++; break; } /* trailing comma */
        }
        if (count > 0 && sb_putc(out, '\n')) return "out of memory";
        const char *e = py_string(s, n, &i, out);
        if (e) return e;
        /* implicit concatenation of adjacent literals: 'a' 'b' */
        for (;;) {
            size_t j = i;
            skip_ws(s, n, &j);
            if (j < n && (s[j] == '\'' || s[j] == '"')) { i = j; if ((e = py_string(s, n, &i, out))) return e; }
            else break;
        }
        count++;
    }
    skip_ws(s, n, &i);
    if (i != n) return "extra characters after the prompt list";
    return NULL;
}

/* Strict number: the whole cell. */
static int parse_num(const char *s, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end == s || *end || errno == ERANGE || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

enum col_kind { COL_IGNORE, COL_INDEX, COL_ID, COL_PROMPT, COL_TASK, COL_LABEL, COL_COST };

int import_routerbench(struct ipr_dataset *ds, const char *buf, size_t len, const char *name)
{
    struct csv c = { .buf = buf, .len = len, .name = name, .line = 1 };
    struct sbuf text = { 0 }, id = { 0 };
    enum col_kind *kind = NULL;
    int *model = NULL;
    size_t n_cols = 0, rec_line = 0;
    int rc;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) c.pos = 3;
    if (!import_utf8_ok(buf, len)) {
        /* find the line for a precise message */
        size_t line = 1, i = 0;
        while (i < len) {
            size_t j = i;
            while (j < len && buf[j] != '\n') j++;
            if (!import_utf8_ok(buf + i, j - i)) break;
            i = j + 1; line++;
        }
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: invalid UTF-8", name, line);
        goto out;
    }
    rc = csv_record(&c, &rec_line);
    if (rc <= 0) {
        if (rc == 0) rc = ipr_error_set(IPR_ERR_FORMAT, "%s:1: empty file: no header row", name);
        goto out;
    }
    n_cols = c.n_cells;
    kind = calloc(n_cols, sizeof *kind);
    model = calloc(n_cols, sizeof *model);
    if (!kind || !model) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
    int have_id = 0, have_prompt = 0, have_task = 0;
    for (size_t k = 0; k < n_cols; k++) {
        const char *h = c.cells[k].p;
        const char *bar = strchr(h, '|');
        model[k] = -1;
        if (k == 0 && !*h) kind[k] = COL_INDEX;
        else if (!strcmp(h, "sample_id")) { kind[k] = COL_ID; have_id++; }
        else if (!strcmp(h, "prompt")) { kind[k] = COL_PROMPT; have_prompt++; }
        else if (!strcmp(h, "eval_name")) { kind[k] = COL_TASK; have_task++; }
        else if (!strcmp(h, "oracle_model_to_route_to") || !*h) kind[k] = COL_IGNORE;
        else if (bar && !strcmp(bar, "|total_cost") && bar > h) {
            kind[k] = COL_COST;
            char m[512];
            size_t ml = (size_t)(bar - h);
            if (ml >= sizeof m) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s:1: model name too long", name); goto out; }
            memcpy(m, h, ml); m[ml] = '\0';
            model[k] = ipr_dataset_add_model(ds, m);
        } else if (bar) kind[k] = COL_IGNORE; /* |model_response and the like */
        else { kind[k] = COL_LABEL; model[k] = ipr_dataset_add_model(ds, h); }
        if (model[k] < 0 && (kind[k] == COL_COST || kind[k] == COL_LABEL)) { rc = ipr_error_wrap(model[k], "%s:1", name); goto out; }
    }
    if (have_id != 1 || have_prompt != 1) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s:1: header needs exactly one \"sample_id\" and one \"prompt\" column", name);
        goto out;
    }
    (void)have_task;
    size_t n_rows = 0;
    while ((rc = csv_record(&c, &rec_line)) == 1) {
        if (c.n_cells == 1 && c.cells[0].n == 0) continue; /* blank line */
        if (c.n_cells != n_cols) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: %zu cells, the header has %zu", name, rec_line, c.n_cells, n_cols);
            goto out;
        }
        n_rows++;
        const char *sid = NULL, *task = NULL, *rowidx = NULL;
        text.n = 0;
        if (sb_put(&text, "", 0)) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
        for (size_t k = 0; k < n_cols; k++) {
            const char *v = c.cells[k].p;
            if (kind[k] == COL_ID) sid = v;
            else if (kind[k] == COL_TASK) task = *v ? v : NULL;
            else if (kind[k] == COL_INDEX) rowidx = v;
            else if (kind[k] == COL_PROMPT) {
                const char *e = py_list(v, c.cells[k].n, &text);
                if (e) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: prompt cell: %s", name, rec_line, e); goto out; }
                if (!import_utf8_ok(text.p, text.n) || strlen(text.p) != text.n) {
                    rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: prompt is not valid UTF-8 text (NUL byte?)", name, rec_line);
                    goto out;
                }
            }
        }
        if (!sid || !*sid) { rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: empty sample_id", name, rec_line); goto out; }
        id.n = 0;
        if (sb_put(&id, sid, strlen(sid))) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
        long r = ipr_dataset_add(ds, id.p, text.p, task);
        if (r == IPR_ERR_INVAL) { /* repeated sample_id: append the row index */
            char suffix[64];
            if (rowidx && *rowidx) snprintf(suffix, sizeof suffix, "#%.40s", rowidx);
            else snprintf(suffix, sizeof suffix, "#%zu", n_rows - 1);
            if (sb_put(&id, suffix, strlen(suffix))) { rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory"); goto out; }
            r = ipr_dataset_add(ds, id.p, text.p, task);
            if (r == IPR_ERR_INVAL) {
                rc = ipr_error_set(IPR_ERR_INVAL, "%s:%zu: duplicate id \"%s\" even with the row index", name, rec_line, id.p);
                goto out;
            }
        }
        if (r < 0) { rc = ipr_error_wrap((int)r, "%s:%zu", name, rec_line); goto out; }
        for (size_t k = 0; k < n_cols; k++) {
            if (kind[k] != COL_LABEL && kind[k] != COL_COST) continue;
            const char *v = c.cells[k].p;
            while (*v == ' ') v++;
            if (!*v) continue;
            double x;
            if (parse_num(v, &x) != 0) {
                rc = ipr_error_set(IPR_ERR_FORMAT, "%s:%zu: column \"%s\": \"%.40s\" is not a number", name, rec_line,
                                   ds->models[model[k]], v);
                goto out;
            }
            if (kind[k] == COL_LABEL) {
                if (!(x >= 0 && x <= 1)) {
                    rc = ipr_error_set(IPR_ERR_INVAL, "%s:%zu: label %g of \"%s\" is outside [0,1]", name, rec_line, x, ds->models[model[k]]);
                    goto out;
                }
                *ipr_dataset_score(ds, (size_t)r, (size_t)model[k]) = x;
            } else {
                if (!(x >= 0)) {
                    rc = ipr_error_set(IPR_ERR_INVAL, "%s:%zu: negative cost %g for \"%s\"", name, rec_line, x, ds->models[model[k]]);
                    goto out;
                }
                *ipr_dataset_cost(ds, (size_t)r, (size_t)model[k]) = x;
            }
        }
    }
    if (rc < 0) goto out;
    rc = n_rows ? IPR_OK : ipr_error_set(IPR_ERR_FORMAT, "%s:2: no data rows after the header", name);
out:
    for (size_t k = 0; k < c.cap_cells; k++) free(c.cells[k].p);
    free(c.cells);
    free(text.p); free(id.p);
    free(kind); free(model);
    return rc;
}

int ipr_import_buffer(struct ipr_dataset *ds, enum ipr_import_format fmt,
                      const char *buf, size_t len, const char *name)
{
    if (!name) name = "(buffer)";
    switch (fmt) {
    case IPR_IMPORT_ROUTERBENCH: return import_routerbench(ds, buf, len, name);
    case IPR_IMPORT_ROUTERDC:
    case IPR_IMPORT_LLMROUTER:   return import_json_scores(ds, fmt, buf, len, name);
    }
    return ipr_error_set(IPR_ERR_INVAL, "unknown import format %d", (int)fmt);
}

int ipr_import_file(struct ipr_dataset *ds, enum ipr_import_format fmt, const char *path)
{
    char *buf; size_t len;
    int rc = ipr_file_read(path, &buf, &len);
    if (rc) return rc;
    rc = ipr_import_buffer(ds, fmt, buf, len, path);
    free(buf);
    return rc;
}
