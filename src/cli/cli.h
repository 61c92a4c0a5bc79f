/*
 * cli.h — what the `ipr` commands share: the command table entry points and a
 * small option parser. Commands only compose library calls; `main` and exit()
 * live in src/cli/ alone.
 */
#ifndef IPR_CLI_H
#define IPR_CLI_H

#include <stddef.h>

/* Each command: argv[0] is the command name; returns the process exit code. */
int cmd_import(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_encoder(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_add_model(int argc, char **argv);
int cmd_route(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* `ipr eval --log DB`: replays an `ipr serve` decision log (in cmd_serve.c). */
int cli_eval_log(const char *db, const char *rule, const char *delta, const char *json_path);

/* Option parsing: a table of long options ("--name"), each with a value or a
 * flag. Positional arguments are collected in order. */
struct cli_opt {
    const char *name;   /* without the leading "--" */
    int takes_value;    /* 1: "--name VALUE" or "--name=VALUE"; 0: flag */
    const char *value;  /* out: the value, "1" for a set flag, NULL if absent */
    int repeat;         /* 1: may repeat; values then in `values` */
    const char *values[16];
    int n_values;
};

/* Parses argv[1..]. Returns 0, or prints a clear error to stderr and returns 2
 * for an unknown option or a missing value. pos receives positionals. */
int cli_parse(int argc, char **argv, struct cli_opt *opts, size_t n_opts,
              const char **pos, int max_pos, int *n_pos);
/* The start every command shares: "--help" anywhere prints usage to stdout;
 * "-o" is read as "--o" when the table has an "o" option; then cli_parse, and
 * a usage reminder on stderr after a parse error. Returns -1 when the command
 * should go on, else the exit code to return (0 after help, 2 on error). */
int cli_start(int argc, char **argv, struct cli_opt *opts, size_t n_opts,
              const char **pos, int max_pos, int *n_pos, const char *usage);
const char *cli_get(const struct cli_opt *opts, size_t n_opts, const char *name);
int cli_flag(const struct cli_opt *opts, size_t n_opts, const char *name);

/* Strict number parsing: the whole string must be a finite number. */
int cli_double(const char *s, double *out);
int cli_long(const char *s, long *out);

/* Prints "ipr <cmd>: <message from ipr_error_message()>" and returns 1. */
int cli_fail(const char *cmd, int err);

/* A progress bar on stderr, shown only when stderr is a terminal or
 * IPR_PROGRESS=1; rate-limited to a few updates per second. */
struct cli_progress {
    const char *label;
    size_t total;
    double t0, last;
    int enabled;
};
void cli_progress_start(struct cli_progress *p, const char *label, size_t total);
void cli_progress_update(struct cli_progress *p, size_t done);
void cli_progress_end(struct cli_progress *p);
double cli_now(void); /* monotonic seconds */

#endif
