/*
 * cli.c — option parsing, number parsing, errors and progress for the commands.
 */
#include "cli/cli.h"
#include "ipr/err.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct cli_opt *find_opt(struct cli_opt *opts, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int cli_parse(int argc, char **argv, struct cli_opt *opts, size_t n_opts,
              const char **pos, int max_pos, int *n_pos)
{
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (*n_pos >= max_pos) goto too_many;
                pos[(*n_pos)++] = argv[i];
            }
            break;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (*n_pos >= max_pos) goto too_many;
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        struct cli_opt *o = find_opt(opts, n_opts, name, len);
        if (!o) {
            fprintf(stderr, "ipr %s: unknown option '%s'\n", argv[0], a);
            return 2;
        }
        const char *val = "1";
        if (o->takes_value) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fprintf(stderr, "ipr %s: option '--%s' needs a value\n", argv[0], o->name);
                return 2;
            }
        } else if (eq) {
            fprintf(stderr, "ipr %s: option '--%s' takes no value\n", argv[0], o->name);
            return 2;
        }
        if (o->repeat) {
            if (o->n_values >= (int)(sizeof o->values / sizeof o->values[0])) {
                fprintf(stderr, "ipr %s: option '--%s' given too often\n", argv[0], o->name);
                return 2;
            }
            o->values[o->n_values++] = val;
        }
        o->value = val;
    }
    return 0;
too_many:
    fprintf(stderr, "ipr %s: too many arguments\n", argv[0]);
    return 2;
}

int cli_start(int argc, char **argv, struct cli_opt *opts, size_t n_opts,
              const char **pos, int max_pos, int *n_pos, const char *usage)
{
    int has_o = find_opt(opts, n_opts, "o", 1) != NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (has_o && strcmp(argv[i], "-o") == 0)
            argv[i] = "--o";
    }
    if (cli_parse(argc, argv, opts, n_opts, pos, max_pos, n_pos) != 0) {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}

const char *cli_get(const struct cli_opt *opts, size_t n_opts, const char *name)
{
    for (size_t i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return opts[i].value;
    return NULL;
}

int cli_flag(const struct cli_opt *opts, size_t n_opts, const char *name)
{
    return cli_get(opts, n_opts, name) != NULL;
}

int cli_double(const char *s, double *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int cli_long(const char *s, long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_fail(const char *cmd, int err)
{
    (void)err;
    fprintf(stderr, "ipr %s: %s\n", cmd, ipr_error_message());
    return 1;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_progress_start(struct cli_progress *p, const char *label, size_t total)
{
    const char *env = getenv("IPR_PROGRESS");
    p->label = label;
    p->total = total;
    p->t0 = p->last = cli_now();
    p->enabled = env ? strcmp(env, "0") != 0 : isatty(2);
}

void cli_progress_update(struct cli_progress *p, size_t done)
{
    if (!p->enabled)
        return;
    double now = cli_now();
    if (now - p->last < 0.2 && done < p->total)
        return;
    p->last = now;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    int w = 30, fill = (int)(frac * w);
    double el = now - p->t0, eta = frac > 0 ? el / frac - el : 0;
    fprintf(stderr, "\r%-12s [%.*s%*s] %5.1f%% %zu/%zu %.1fs eta %.1fs ", p->label,
            fill, "##############################", w - fill, "", frac * 100.0,
            done, p->total, el, eta);
}

void cli_progress_end(struct cli_progress *p)
{
    if (!p->enabled)
        return;
    cli_progress_update(p, p->total);
    fprintf(stderr, "\n");
}
