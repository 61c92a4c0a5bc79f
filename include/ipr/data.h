/*
 * data.h — the canonical dataset and the model registry (DESIGN.md §2).
 *
 * A dataset is a table of prompts x models: per-model quality labels in [0,1]
 * and optional per-response costs in USD. It is read from and written to JSON
 * Lines, one prompt per line:
 *   {"id": "...", "prompt": "...", "task": "...",
 *    "scores": {model: q}, "costs": {model: usd}}
 * A missing label or cost is stored as NaN. Model columns are the union of the
 * models named on any line, in order of first appearance.
 *
 * The registry describes the candidate models (prices, family, upstream) and is
 * JSON: {"models": [{"name", "family", "price_in", "price_out",
 * "mean_out_tokens", "upstream": {"base_url", "api_key_env", "model"}}],
 * "fallback": NAME}. Prices are USD per 1M tokens.
 *
 * Ownership: ipr_dataset_* and ipr_registry_* objects own every string and array
 * they point to; free them with the matching *_free. Writers write to a
 * temporary file in the target's directory, fsync and rename, so a failure
 * never leaves a half-written file.
 */
#ifndef IPR_DATA_H
#define IPR_DATA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ipr_prompt {
    char *id;    /* unique within the dataset */
    char *text;  /* valid UTF-8 */
    char *task;  /* may be NULL */
};

struct ipr_dataset {
    size_t n;                   /* prompts */
    size_t n_models;            /* model columns */
    char **models;              /* (n_models) model names */
    struct ipr_prompt *prompts; /* (n) */
    double *scores;             /* (n, n_models) quality in [0,1], NaN = no label */
    double *costs;              /* (n, n_models) USD, NaN = unknown */
    size_t cap;                 /* allocated prompt rows (internal) */
    void *id_index;             /* internal: id -> row hash index, NULL until needed */
};

/* Dataset lifecycle and building. ipr_dataset_add copies its strings and
 * returns the new row index (>= 0) or a negative ipr_err (duplicate id). */
struct ipr_dataset *ipr_dataset_new(void);
void ipr_dataset_free(struct ipr_dataset *ds);
int  ipr_dataset_add_model(struct ipr_dataset *ds, const char *name); /* index, existing or new */
int  ipr_dataset_model_index(const struct ipr_dataset *ds, const char *name); /* -1 if absent */
long ipr_dataset_add(struct ipr_dataset *ds, const char *id, const char *text, const char *task);
static inline double *ipr_dataset_score(const struct ipr_dataset *ds, size_t i, size_t m)
{ return &ds->scores[i * ds->n_models + m]; }
static inline double *ipr_dataset_cost(const struct ipr_dataset *ds, size_t i, size_t m)
{ return &ds->costs[i * ds->n_models + m]; }

/* JSON Lines I/O. Read errors name the file and line (ipr_error_message). */
int ipr_dataset_read(const char *path, struct ipr_dataset **out);
int ipr_dataset_write(const struct ipr_dataset *ds, const char *path);
/* The JSON Lines text ipr_dataset_write writes, as a malloc'd buffer (caller
 * frees; length in *len); NULL on NOMEM. */
char *ipr_dataset_to_jsonl(const struct ipr_dataset *ds, size_t *len);
/* (A dataset without prompts is written as an empty file, which the reader
 * rejects as "empty file".) */
/* Parses JSON Lines from memory; name is used in error messages ("NAME:LINE:
 * what"). A path ending in ".gz" (or gzip data) is read and written
 * compressed; reading "x.jsonl" falls back to "x.jsonl.gz" when only that
 * exists. On failure *out is NULL. */
int ipr_dataset_parse(const char *buf, size_t len, const char *name, struct ipr_dataset **out);

/* 64-bit content checksum of a dataset (ids, prompts, labels, costs), used to
 * record in a router bundle which data trained it. */
uint64_t ipr_dataset_checksum(const struct ipr_dataset *ds);

/* Deterministic split by a hash of the id: returns 0 = train, 1 = validation,
 * 2 = test, for fractions val_frac and test_frac of the prompts. */
int ipr_split_of(const char *id, double val_frac, double test_frac);

/* Copies the rows for which keep[i] != 0 into a new dataset (same models). */
int ipr_dataset_subset(const struct ipr_dataset *ds, const uint8_t *keep, struct ipr_dataset **out);

/* The project's approximate tokenizer, used for expected costs where a dataset
 * has none: documented in docs/data.md. */
size_t ipr_count_tokens(const char *text, size_t len);

/* --- registry --- */

struct ipr_upstream {
    char *base_url;     /* OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 */
    char *api_key_env;  /* name of the environment variable holding the key, or NULL */
    char *model;        /* model id upstream; NULL = the registry name */
};

struct ipr_model_info {
    char *name;
    char *family;             /* may be NULL */
    double price_in;          /* USD per 1M input tokens */
    double price_out;         /* USD per 1M output tokens */
    double mean_out_tokens;
    int has_upstream;
    struct ipr_upstream upstream;
};

struct ipr_registry {
    size_t n;
    struct ipr_model_info *models; /* (n) */
    char *fallback;                /* name of the fallback model, or NULL */
};

int  ipr_registry_read(const char *path, struct ipr_registry **out);
int  ipr_registry_parse(const char *json, size_t len, const char *what, struct ipr_registry **out);
int  ipr_registry_write(const struct ipr_registry *reg, const char *path);
/* Serialises to a malloc'd JSON string (caller frees). NULL on NOMEM. */
char *ipr_registry_to_json(const struct ipr_registry *reg);
int  ipr_registry_find(const struct ipr_registry *reg, const char *name); /* -1 if absent */
int  ipr_registry_copy(const struct ipr_registry *reg, struct ipr_registry **out);
void ipr_registry_free(struct ipr_registry *reg);

/* Expected cost in USD of model m on a prompt of in_tokens input tokens:
 * in_tokens * price_in / 1e6 + mean_out_tokens * price_out / 1e6. */
double ipr_registry_expected_cost(const struct ipr_registry *reg, size_t m, size_t in_tokens);

/* --- importers (DESIGN.md §5 `ipr import`) --- */
enum ipr_import_format { IPR_IMPORT_ROUTERBENCH, IPR_IMPORT_ROUTERDC, IPR_IMPORT_LLMROUTER };

/* Appends the prompts of one source file to ds. For RouterDC and LLMRouter the
 * id is "<file stem>.<row>". The in-memory variants exist for the fuzzers. */
int ipr_import_file(struct ipr_dataset *ds, enum ipr_import_format fmt, const char *path);
int ipr_import_buffer(struct ipr_dataset *ds, enum ipr_import_format fmt,
                      const char *buf, size_t len, const char *name);

#ifdef __cplusplus
}
#endif
#endif
