/* fuzz_encoder_convert.c — libFuzzer target: the streaming wink-JSON
 * converter on arbitrary bytes. Whatever it accepts must open as an encoder
 * file and embed a few prompts with finite values; whatever it rejects must
 * leave no file and say why. */
#include "encoder/glove_impl.h"
#include "ipr/encoder.h"
#include "ipr/err.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/ipr_fuzz_enc_%ld.ipre", (long)getpid());
    unlink(path);
    FILE *f = fmemopen((void *)data, size ? size : 1, "rb");
    if (!f) return 0;
    if (!size) { fclose(f); return 0; }
    int rc = glove_convert_stream(f, "fuzz.json", path, "fuzz");
    fclose(f);
    if (rc != IPR_OK) {
        if (access(path, F_OK) == 0 || strlen(ipr_error_message()) == 0) __builtin_trap();
        return 0;
    }
    struct ipr_encoder *enc;
    if (ipr_encoder_open(path, &enc) != IPR_OK) __builtin_trap();
    struct ipr_embed_ctx *ctx;
    if (ipr_embed_ctx_new(enc, &ctx) != IPR_OK) __builtin_trap();
    float *x = malloc(enc->dim * sizeof *x);
    static const char *p[3] = { "", "the king, e-mail kubernetes?", "\xff\xfe A) x\nB) y" };
    for (int i = 0; i < 3; i++) {
        if (ipr_encoder_embed(enc, ctx, p[i], strlen(p[i]), x) != IPR_OK) __builtin_trap();
        for (size_t k = 0; k < enc->dim; k++)
            if (!isfinite(x[k])) __builtin_trap();
    }
    free(x);
    ipr_embed_ctx_free(enc, ctx);
    ipr_encoder_close(enc);
    unlink(path);
    return 0;
}
