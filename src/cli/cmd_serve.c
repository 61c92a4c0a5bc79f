/* cmd_serve.c — placeholder until the command lands; says so plainly. */
#include "cli/cli.h"

#include <stdio.h>

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "ipr %s: not implemented yet\n", argv[0]);
    return 1;
}
