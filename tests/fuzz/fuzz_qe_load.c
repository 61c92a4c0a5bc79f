/*
 * fuzz_qe_load.c — libFuzzer target for the quality-estimator blob reader
 * (src/qe/qe_io.c). Any input must be rejected cleanly or load into an
 * estimator that saves back to exactly the same bytes and predicts without
 * touching memory it does not own. Every part carries an XXH64 of its
 * payload, so mutations mostly exercise the framing and header checks; the
 * payload checks are covered by tests/test_qe.c.
 */
#include "ipr/qe.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ipr_qe *qe = NULL;
    if (ipr_qe_load(data, size, &qe) != 0)
        return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ipr_qe_save(qe, &buf, &len) != 0 || len != size || memcmp(buf, data, size) != 0)
        abort(); /* a blob that loads must round-trip byte for byte */
    size_t d = ipr_qe_dim(qe), m = ipr_qe_n_models(qe);
    float *x = calloc(d, sizeof *x), *scratch = malloc(ipr_qe_scratch_floats(qe) * sizeof *scratch);
    double *out = malloc((m + 1) * sizeof *out);
    if (x && scratch && out) {
        ipr_qe_predict(qe, x, scratch, out);
        for (size_t j = 0; j < m; j++)
            if (!isnan(out[j]) && !(out[j] >= 0 && out[j] <= 1))
                abort(); /* a quality, or NaN when huge weights overflow (router falls back) */
    }
    free(x), free(scratch), free(out), free(buf);
    ipr_qe_free(qe);
    return 0;
}
