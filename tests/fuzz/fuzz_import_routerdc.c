/* fuzz_import_routerdc.c — libFuzzer target: the routerdc importer on arbitrary bytes
 * must return OK or an error with a message, never crash, leak or overrun. */
#include "ipr/data.h"
#include "ipr/err.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipr_dataset *ds = ipr_dataset_new();
    if (!ds) return 0;
    int rc = ipr_import_buffer(ds, IPR_IMPORT_ROUTERDC, (const char *)data, size, "fuzz/in_train.json");
    if (rc != IPR_OK && strlen(ipr_error_message()) == 0) __builtin_trap();
    for (size_t i = 0; i < ds->n; i++) /* every accepted prompt is a C string */
        (void)strlen(ds->prompts[i].text);
    ipr_dataset_free(ds);
    return 0;
}
