/*
 * train_common.c — label tables, validation splits and input loading shared by
 * the training-related commands (see train_common.h).
 */
#include "cli/train_common.h"
#include "ipr/err.h"
#include "ipr/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int table_build(struct ipr_dataset *const *ds, size_t n_ds, size_t n_val_ds, const struct ipr_registry *reg,
                int notes, struct table *t)
{
    memset(t, 0, sizeof *t);
    t->m = reg->n;
    for (size_t k = 0; k < n_ds; k++)
        t->n += ds[k]->n;
    t->ids = calloc(t->n ? t->n : 1, sizeof *t->ids);
    t->texts = calloc(t->n ? t->n : 1, sizeof *t->texts);
    t->y = malloc((t->n * t->m + 1) * sizeof *t->y);
    t->c = malloc((t->n * t->m + 1) * sizeof *t->c);
    t->e = malloc((t->n * t->m + 1) * sizeof *t->e);
    t->is_val = calloc(t->n + 1, 1);
    t->from_val = calloc(t->n + 1, 1);
    if (!t->ids || !t->texts || !t->y || !t->c || !t->e || !t->is_val || !t->from_val) {
        table_free(t);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory for a %zu x %zu label table", t->n, t->m);
    }
    size_t row = 0;
    for (size_t k = 0; k < n_ds; k++) {
        const struct ipr_dataset *d = ds[k];
        int col[IPR_MAX_MODELS];
        for (size_t m = 0; m < t->m; m++)
            col[m] = ipr_dataset_model_index(d, reg->models[m].name);
        for (size_t j = 0; j < d->n_models; j++)
            if (notes && ipr_registry_find(reg, d->models[j]) < 0)
                fprintf(stderr, "note: model '%s' of the data is not in the registry; its labels are ignored\n",
                        d->models[j]);
        for (size_t i = 0; i < d->n; i++, row++) {
            t->ids[row] = d->prompts[i].id;
            t->texts[row] = d->prompts[i].text;
            t->from_val[row] = k >= n_ds - n_val_ds;
            size_t tokens = ipr_count_tokens(t->texts[row], strlen(t->texts[row]));
            for (size_t m = 0; m < t->m; m++) {
                t->e[row * t->m + m] = ipr_registry_expected_cost(reg, m, tokens);
                t->y[row * t->m + m] = col[m] >= 0 ? *ipr_dataset_score(d, i, (size_t)col[m]) : NAN;
                t->c[row * t->m + m] = col[m] >= 0 ? *ipr_dataset_cost(d, i, (size_t)col[m]) : NAN;
            }
        }
    }
    return IPR_OK;
}

void table_free(struct table *t)
{
    free(t->ids);
    free(t->texts);
    free(t->y);
    free(t->c);
    free(t->e);
    free(t->is_val);
    free(t->from_val);
    memset(t, 0, sizeof *t);
}

void table_split(struct table *t, double val_frac)
{
    int files = 0;
    for (size_t i = 0; i < t->n; i++)
        files |= t->from_val[i];
    for (size_t i = 0; i < t->n; i++)
        t->is_val[i] = files ? t->from_val[i] : ipr_split_of(t->ids[i], val_frac, 0.0) == 1;
}

void table_split_fold(struct table *t, int folds, int k)
{
    for (size_t i = 0; i < t->n; i++)
        t->is_val[i] = (int)(XXH3_64bits(t->ids[i], strlen(t->ids[i])) % (uint64_t)folds) == k;
}

int table_partition(struct table *t, float *X, size_t d, size_t *n_train)
{
    size_t n = t->n, m = t->m, *perm = malloc((n + 1) * sizeof *perm), k = 0;
    const char **ids = malloc((n + 1) * sizeof *ids), **texts = malloc((n + 1) * sizeof *texts);
    double *y = malloc((n * m + 1) * sizeof *y), *c = malloc((n * m + 1) * sizeof *c);
    double *e = malloc((n * m + 1) * sizeof *e);
    uint8_t *fv = malloc(n + 1);
    float *row = malloc((d + 1) * sizeof *row);
    if (!perm || !ids || !texts || !y || !c || !e || !fv || !row) {
        free(perm), free(ids), free(texts), free(y), free(c), free(e), free(fv), free(row);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    for (int want = 0; want <= 1; want++)
        for (size_t i = 0; i < n; i++)
            if (t->is_val[i] == want)
                perm[k++] = i; /* new row k holds old row perm[k] */
    *n_train = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = t->ids[perm[i]];
        texts[i] = t->texts[perm[i]];
        memcpy(y + i * m, t->y + perm[i] * m, m * sizeof *y);
        memcpy(c + i * m, t->c + perm[i] * m, m * sizeof *c);
        memcpy(e + i * m, t->e + perm[i] * m, m * sizeof *e);
        fv[i] = t->from_val[perm[i]];
        *n_train += !t->is_val[perm[i]];
    }
    for (size_t i = 0; i < n; i++)
        t->is_val[i] = i >= *n_train;
    /* X in place, cycle by cycle; perm entries are marked done with ~0. */
    for (size_t start = 0; X && start < n; start++) {
        if (perm[start] == (size_t)-1 || perm[start] == start)
            continue;
        memcpy(row, X + start * d, d * sizeof *row);
        size_t cur = start;
        while (perm[cur] != start) {
            size_t next = perm[cur];
            memcpy(X + cur * d, X + next * d, d * sizeof *row);
            perm[cur] = (size_t)-1;
            cur = next;
        }
        memcpy(X + cur * d, row, d * sizeof *row);
        perm[cur] = (size_t)-1;
    }
    free(t->ids), free(t->texts), free(t->y), free(t->c), free(t->e), free(t->from_val);
    t->ids = ids, t->texts = texts, t->y = y, t->c = c, t->e = e, t->from_val = fv;
    free(perm), free(row);
    return IPR_OK;
}

/* Appends src's models to dst; names must stay unique. */
static int registry_append(struct ipr_registry *dst, const struct ipr_registry *src, const char *path)
{
    struct ipr_registry *copy;
    int rc = ipr_registry_copy(src, &copy);
    if (rc != IPR_OK)
        return rc;
    for (size_t m = 0; m < copy->n; m++)
        if (ipr_registry_find(dst, copy->models[m].name) >= 0) {
            rc = ipr_error_set(IPR_ERR_INVAL, "%s: model '%s' is already in an earlier registry", path, copy->models[m].name);
            ipr_registry_free(copy);
            return rc;
        }
    struct ipr_model_info *mi = realloc(dst->models, (dst->n + copy->n) * sizeof *mi);
    if (!mi) {
        ipr_registry_free(copy);
        return ipr_error_set(IPR_ERR_NOMEM, "out of memory");
    }
    memcpy(mi + dst->n, copy->models, copy->n * sizeof *mi);
    dst->models = mi;
    dst->n += copy->n;
    copy->n = 0; /* the strings moved to dst */
    ipr_registry_free(copy);
    return IPR_OK;
}

int load_inputs(const char *cmd, const char *const *data, int n_data, const char *const *regs, int n_regs,
                struct ipr_dataset **ds, struct ipr_registry **reg)
{
    int rc;
    *reg = NULL;
    for (int i = 0; i < n_data; i++)
        ds[i] = NULL;
    if (n_data == 0 || n_regs == 0)
        return ipr_error_set(IPR_ERR_INVAL, "%s needs --data and --registry", cmd);
    for (int i = 0; i < n_regs; i++) {
        struct ipr_registry *r;
        if ((rc = ipr_registry_read(regs[i], &r)) != IPR_OK)
            goto fail;
        if (!*reg) {
            *reg = r;
            continue;
        }
        rc = registry_append(*reg, r, regs[i]);
        ipr_registry_free(r);
        if (rc != IPR_OK)
            goto fail;
    }
    if ((*reg)->n > IPR_MAX_MODELS) {
        rc = ipr_error_set(IPR_ERR_LIMIT, "%zu models; a router holds at most %d", (*reg)->n, IPR_MAX_MODELS);
        goto fail;
    }
    for (int i = 0; i < n_data; i++)
        if ((rc = ipr_dataset_read(data[i], &ds[i])) != IPR_OK)
            goto fail;
    return IPR_OK;
fail:
    for (int i = 0; i < n_data; i++) {
        ipr_dataset_free(ds[i]);
        ds[i] = NULL;
    }
    ipr_registry_free(*reg);
    *reg = NULL;
    return rc;
}

double parity_tau(const struct ipr_eval_curve *cv, const struct ipr_eval_ref *ref)
{
    double best = 0.0;
    for (size_t k = 0; k < cv->k; k++)
        if (cv->quality[k] >= ref->q_s - IPR_EVAL_EPS * fmax(1.0, fabs(ref->q_s)))
            best = cv->tau[k];
    return best;
}
