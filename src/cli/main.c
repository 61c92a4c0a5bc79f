/*
 * main.c — the `ipr` command: dispatches to one command per file in src/cli/.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    { "import",    cmd_import,    "convert a public dataset (routerbench|routerdc|llmrouter) to JSON Lines" },
    { "data",      cmd_data,      "data stats FILE: prompts, models, coverage, mean quality and cost" },
    { "encoder",   cmd_encoder,   "fetch|convert|info: get the pretrained vectors, write the encoder file" },
    { "embed",     cmd_embed,     "embed a dataset into a cache file" },
    { "train",     cmd_train,     "train quality estimators and write a router bundle" },
    { "add-model", cmd_add_model, "add a candidate model to a bundle, training only its adapter" },
    { "route",     cmd_route,     "route one prompt; JSON decision on stdout" },
    { "eval",      cmd_eval,      "quality-cost curves, metrics and baselines on a labelled set" },
    { "calibrate", cmd_calibrate, "find the tau that meets a cost, share or quality target" },
    { "serve",     cmd_serve,     "HTTP routing server and OpenAI-compatible gateway" },
    { "bench",     cmd_bench,     "latency and throughput figures" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: ipr COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nRun 'ipr COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("ipr 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ipr: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
