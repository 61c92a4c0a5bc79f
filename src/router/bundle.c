/*
 * bundle.c — reading and writing router bundles (format in bundle.h).
 *
 * Reading maps the file and validates the header, table of contents and each
 * section's checksum against the mapping before any section is parsed; the
 * parsed objects copy what they keep, so the mapping is released on return.
 */
#include "ipr/bundle.h"
#include "ipr/err.h"
#include "ipr/io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define MAGIC "IPRBNDL"
#define HEADER_SIZE 64
#define TOC_ENTRY 32
#define ALIGN 64

struct section {
    char tag[8];
    uint64_t offset, length, checksum;
};

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static const char *const input_names[] = { "full", "view", "full+view" };

const char *ipr_input_mode_name(enum ipr_input_mode m)
{
    return (unsigned)m < 3 ? input_names[m] : "unknown";
}

int ipr_input_mode_parse(const char *s, enum ipr_input_mode *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, input_names[i]) == 0) {
            *out = (enum ipr_input_mode)i;
            return IPR_OK;
        }
    return ipr_error_set(IPR_ERR_INVAL, "unknown input mode '%s' (full, view or full+view)", s);
}

void ipr_bundle_free(struct ipr_bundle *b)
{
    if (!b)
        return;
    free(b->meta.metrics_json);
    ipr_registry_free(b->reg);
    for (size_t k = 0; k < b->n_qe; k++)
        ipr_qe_free(b->qe[k]);
    ipr_view_free(b->view);
    free(b);
}

/* --- META <-> JSON --- */

static char *meta_to_json(const struct ipr_bundle_meta *m)
{
    char hex[32];
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON *enc = cJSON_AddObjectToObject(o, "encoder");
    cJSON_AddStringToObject(enc, "name", m->encoder_name);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)m->encoder_checksum);
    cJSON_AddStringToObject(enc, "checksum", hex);
    cJSON_AddNumberToObject(enc, "dim", (double)m->encoder_dim);
    cJSON_AddStringToObject(o, "input", ipr_input_mode_name(m->input));
    cJSON_AddStringToObject(o, "default_rule", ipr_rule_name(m->default_rule));
    cJSON_AddNumberToObject(o, "default_tau", m->default_tau);
    cJSON_AddNumberToObject(o, "delta", m->delta);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)m->data_checksum);
    cJSON_AddStringToObject(o, "data_checksum", hex);
    cJSON_AddNumberToObject(o, "n_train", (double)m->n_train);
    cJSON_AddNumberToObject(o, "n_val", (double)m->n_val);
    cJSON_AddStringToObject(o, "created", m->created);
    cJSON *metrics = m->metrics_json ? cJSON_Parse(m->metrics_json) : NULL;
    cJSON_AddItemToObject(o, "validation", metrics ? metrics : cJSON_CreateObject());
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int get_hex(const cJSON *o, const char *k, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    char *end;
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 16)
        return -1;
    *out = strtoull(v->valuestring, &end, 16);
    return *end ? -1 : 0;
}

static int get_num(const cJSON *o, const char *k, double lo, double hi, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return -1;
    *out = v->valuedouble;
    return 0;
}

static int meta_from_json(const char *path, const uint8_t *p, size_t len, struct ipr_bundle_meta *m)
{
    cJSON *o = cJSON_ParseWithLength((const char *)p, len);
    const cJSON *enc = o ? cJSON_GetObjectItemCaseSensitive(o, "encoder") : NULL;
    const cJSON *name = enc ? cJSON_GetObjectItemCaseSensitive(enc, "name") : NULL;
    const cJSON *input = o ? cJSON_GetObjectItemCaseSensitive(o, "input") : NULL;
    const cJSON *rule = o ? cJSON_GetObjectItemCaseSensitive(o, "default_rule") : NULL;
    const cJSON *created = o ? cJSON_GetObjectItemCaseSensitive(o, "created") : NULL;
    double dim, n_train, n_val;
    enum ipr_rule r;
    int rc = IPR_ERR_FORMAT;
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof m->encoder_name ||
        get_hex(enc, "checksum", &m->encoder_checksum) || get_num(enc, "dim", 1, 1e6, &dim) ||
        !cJSON_IsString(input) || ipr_input_mode_parse(input->valuestring, &m->input) ||
        !cJSON_IsString(rule) || ipr_rule_parse(rule->valuestring, &r) ||
        get_num(o, "default_tau", 0, 1, &m->default_tau) || get_num(o, "delta", 0, 1e9, &m->delta) ||
        get_hex(o, "data_checksum", &m->data_checksum) ||
        get_num(o, "n_train", 0, 1e15, &n_train) || get_num(o, "n_val", 0, 1e15, &n_val)) {
        ipr_error_set(IPR_ERR_FORMAT, "%s: META section is malformed", path);
        goto out;
    }
    snprintf(m->encoder_name, sizeof m->encoder_name, "%s", name->valuestring);
    m->encoder_dim = (size_t)dim;
    m->default_rule = r;
    m->n_train = (size_t)n_train;
    m->n_val = (size_t)n_val;
    snprintf(m->created, sizeof m->created, "%s", cJSON_IsString(created) ? created->valuestring : "");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(o, "validation");
    m->metrics_json = val ? cJSON_PrintUnformatted(val) : strdup("{}");
    rc = m->metrics_json ? IPR_OK : ipr_error_set(IPR_ERR_NOMEM, "out of memory");
out:
    cJSON_Delete(o);
    return rc;
}

/* --- write --- */

int ipr_bundle_write(const struct ipr_bundle *b, const char *path)
{
    enum { S_META, S_REG, S_VIEW, S_QE, S_N = S_QE + IPR_BUNDLE_MAX_QE };
    char tags[S_N][9] = { "META", "REGISTRY", "VIEW" };
    uint8_t *data[S_N] = { 0 };
    size_t len[S_N] = { 0 };
    int rc = IPR_ERR_NOMEM, n = S_QE + (int)b->n_qe;
    if (b->n_qe < 1 || b->n_qe > IPR_BUNDLE_MAX_QE)
        return ipr_error_set(IPR_ERR_INVAL, "%s: a bundle holds 1 to %d estimators", path, IPR_BUNDLE_MAX_QE);
    for (size_t k = 0; k < b->n_qe; k++)
        snprintf(tags[S_QE + k], sizeof tags[0], k ? "QE%zu" : "QE", k);

    char *meta = meta_to_json(&b->meta), *reg = ipr_registry_to_json(b->reg);
    if (!meta || !reg) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    data[S_META] = (uint8_t *)meta, len[S_META] = strlen(meta);
    data[S_REG] = (uint8_t *)reg, len[S_REG] = strlen(reg);
    for (size_t k = 0; k < b->n_qe; k++)
        if ((rc = ipr_qe_save(b->qe[k], &data[S_QE + k], &len[S_QE + k])) != IPR_OK)
            goto out;
    if (b->view && (rc = ipr_view_save(b->view, &data[S_VIEW], &len[S_VIEW])) != IPR_OK)
        goto out;

    uint8_t head[HEADER_SIZE] = { 0 }, toc[IPR_BUNDLE_MAX_SECTIONS * TOC_ENTRY] = { 0 };
    static const uint8_t zeros[ALIGN] = { 0 };
    const void *parts[2 + 2 * S_N];
    size_t plen[2 + 2 * S_N], np = 0;
    int nsec = n - !b->view;
    uint64_t off = HEADER_SIZE + (uint64_t)nsec * TOC_ENTRY;
    parts[np] = head, plen[np++] = HEADER_SIZE;
    parts[np] = toc, plen[np++] = (size_t)nsec * TOC_ENTRY;
    int written = 0;
    for (int i = 0; i < n; i++) {
        if (i == S_VIEW && !b->view)
            continue;
        size_t pad = (size_t)((ALIGN - off % ALIGN) % ALIGN);
        if (pad)
            parts[np] = zeros, plen[np++] = pad;
        off += pad;
        uint8_t *e = toc + written++ * TOC_ENTRY;
        uint64_t ck = XXH3_64bits(data[i], len[i]), l = len[i];
        strncpy((char *)e, tags[i], 8);
        memcpy(e + 8, &off, 8);
        memcpy(e + 16, &l, 8);
        memcpy(e + 24, &ck, 8);
        parts[np] = data[i], plen[np++] = len[i];
        off += len[i];
    }
    uint32_t version = IPR_BUNDLE_VERSION, ns = (uint32_t)written;
    uint64_t tck = XXH3_64bits(toc, (size_t)written * TOC_ENTRY);
    memcpy(head, MAGIC, 8);
    memcpy(head + 8, &version, 4);
    memcpy(head + 12, &ns, 4);
    memcpy(head + 16, &off, 8);
    memcpy(head + 24, &tck, 8);
    size_t total = 0;
    for (size_t i = 0; i < np; i++)
        total += plen[i];
    char *file = malloc(total ? total : 1);
    if (!file) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0, at = 0; i < np; at += plen[i], i++)
        memcpy(file + at, parts[i], plen[i]);
    rc = ipr_file_write(path, file, total);
    free(file);
out:
    for (int i = 0; i < S_N; i++)
        free(data[i]);
    return rc;
}

size_t ipr_bundle_scratch_floats(const struct ipr_bundle *b)
{
    size_t need = 0;
    for (size_t k = 0; k < b->n_qe; k++)
        if (ipr_qe_scratch_floats(b->qe[k]) > need)
            need = ipr_qe_scratch_floats(b->qe[k]);
    return need;
}

void ipr_bundle_predict(const struct ipr_bundle *b, const float *x, float *scratch, double *out)
{
    size_t m = b->reg->n;
    double one[IPR_MAX_MODELS];
    ipr_qe_predict(b->qe[0], x, scratch, out);
    for (size_t k = 1; k < b->n_qe; k++) {
        ipr_qe_predict(b->qe[k], x, scratch, one);
        for (size_t j = 0; j < m; j++)
            out[j] += one[j];
    }
    if (b->n_qe > 1)
        for (size_t j = 0; j < m; j++)
            out[j] /= (double)b->n_qe;
}

/* --- read --- */

static const struct section *find_section(const struct section *s, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(s[i].tag, tag, 8) == 0)
            return &s[i];
    return NULL;
}

int ipr_bundle_read(const char *path, struct ipr_bundle **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ipr_error_set(errno == ENOENT ? IPR_ERR_NOTFOUND : IPR_ERR_IO,
                             "%s: cannot open router bundle: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ipr_error_set(IPR_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < HEADER_SIZE) {
        close(fd);
        return ipr_error_set(IPR_ERR_FORMAT, "%s: truncated router bundle (%zu bytes)", path, size);
    }
    uint8_t *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return ipr_error_set(IPR_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));

    int rc;
    struct section sec[IPR_BUNDLE_MAX_SECTIONS];
    struct ipr_bundle *b = calloc(1, sizeof *b);
    if (!b) {
        rc = ipr_error_set(IPR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (memcmp(map, MAGIC, 8) != 0) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: not an ipr router bundle (bad magic)", path);
        goto out;
    }
    uint32_t version = rd32(map + 8), ns = rd32(map + 12);
    uint64_t fsize = rd64(map + 16), tck = rd64(map + 24);
    if (version != IPR_BUNDLE_VERSION) {
        rc = ipr_error_set(IPR_ERR_VERSION, "%s: router bundle version %u, this ipr reads version %d",
                           path, version, IPR_BUNDLE_VERSION);
        goto out;
    }
    if (fsize != size) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: router bundle is %zu bytes, header says %llu (truncated or extended)",
                           path, size, (unsigned long long)fsize);
        goto out;
    }
    if (ns == 0 || ns > IPR_BUNDLE_MAX_SECTIONS || HEADER_SIZE + (size_t)ns * TOC_ENTRY > size) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: bad section count %u", path, ns);
        goto out;
    }
    if (XXH3_64bits(map + HEADER_SIZE, (size_t)ns * TOC_ENTRY) != tck) {
        rc = ipr_error_set(IPR_ERR_CHECKSUM, "%s: table of contents checksum mismatch (corrupted file)", path);
        goto out;
    }
    for (uint32_t i = 0; i < ns; i++) {
        const uint8_t *e = map + HEADER_SIZE + (size_t)i * TOC_ENTRY;
        memcpy(sec[i].tag, e, 8);
        sec[i].offset = rd64(e + 8);
        sec[i].length = rd64(e + 16);
        sec[i].checksum = rd64(e + 24);
        if (sec[i].offset > size || sec[i].length > size - sec[i].offset) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s: section %.8s lies outside the file", path, sec[i].tag);
            goto out;
        }
        if (XXH3_64bits(map + sec[i].offset, sec[i].length) != sec[i].checksum) {
            rc = ipr_error_set(IPR_ERR_CHECKSUM, "%s: section %.8s checksum mismatch (corrupted file)", path, sec[i].tag);
            goto out;
        }
    }
    const struct section *s_meta = find_section(sec, ns, "META"), *s_reg = find_section(sec, ns, "REGISTRY"),
                         *s_view = find_section(sec, ns, "VIEW");
    if (!s_meta || !s_reg || !find_section(sec, ns, "QE")) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: router bundle lacks a META, REGISTRY or QE section", path);
        goto out;
    }
    if ((rc = meta_from_json(path, map + s_meta->offset, s_meta->length, &b->meta)) != IPR_OK)
        goto out;
    if ((rc = ipr_registry_parse((const char *)map + s_reg->offset, s_reg->length, path, &b->reg)) != IPR_OK)
        goto out;
    for (size_t k = 0; k < IPR_BUNDLE_MAX_QE; k++) {
        char tag[9];
        snprintf(tag, sizeof tag, k ? "QE%zu" : "QE", k);
        const struct section *s_qe = find_section(sec, ns, tag);
        if (!s_qe)
            break;
        if ((rc = ipr_qe_load(map + s_qe->offset, s_qe->length, &b->qe[k])) != IPR_OK) {
            ipr_error_wrap(rc, "%s: %s section", path, tag);
            goto out;
        }
        b->n_qe = k + 1;
    }
    if (s_view && (rc = ipr_view_load(map + s_view->offset, s_view->length, &b->view)) != IPR_OK) {
        ipr_error_wrap(rc, "%s: VIEW section", path);
        goto out;
    }
    if (b->meta.input != IPR_INPUT_FULL && !b->view) {
        rc = ipr_error_set(IPR_ERR_FORMAT, "%s: input mode %s needs a VIEW section", path, ipr_input_mode_name(b->meta.input));
        goto out;
    }
    size_t want = b->meta.encoder_dim * (b->meta.input == IPR_INPUT_FULL_VIEW ? 2 : 1);
    for (size_t k = 0; k < b->n_qe; k++) {
        if (ipr_qe_n_models(b->qe[k]) != b->reg->n) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s: QE has %zu models, registry %zu", path, ipr_qe_n_models(b->qe[k]),
                               b->reg->n);
            goto out;
        }
        if (ipr_qe_dim(b->qe[k]) != want) {
            rc = ipr_error_set(IPR_ERR_FORMAT, "%s: QE expects %zu inputs, encoder layout gives %zu", path,
                               ipr_qe_dim(b->qe[k]), want);
            goto out;
        }
    }
    if (b->reg->n > IPR_MAX_MODELS) {
        rc = ipr_error_set(IPR_ERR_LIMIT, "%s: %zu models, at most %d", path, b->reg->n, IPR_MAX_MODELS);
        goto out;
    }
    rc = IPR_OK;
out:
    munmap(map, size);
    if (rc != IPR_OK)
        ipr_bundle_free(b);
    else
        *out = b;
    return rc;
}
