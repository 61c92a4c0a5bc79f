/* fuzz_import_jsonl.c — libFuzzer target: the canonical JSON Lines reader on
 * arbitrary bytes; whatever it accepts must survive a write/read round trip
 * with the same checksum. */
#include "ipr/data.h"
#include "ipr/err.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipr_dataset *ds = NULL, *back = NULL;
    int rc = ipr_dataset_parse((const char *)data, size, "fuzz.jsonl", &ds);
    if (rc != IPR_OK) {
        if (ds || strlen(ipr_error_message()) == 0) __builtin_trap();
        return 0;
    }
    size_t len;
    char *text = ipr_dataset_to_jsonl(ds, &len);
    if (text) {
        if (ipr_dataset_parse(text, len, "rewritten.jsonl", &back) != IPR_OK) __builtin_trap();
        if (ipr_dataset_checksum(ds) != ipr_dataset_checksum(back)) __builtin_trap();
        ipr_dataset_free(back);
        free(text);
    }
    ipr_dataset_free(ds);
    return 0;
}
