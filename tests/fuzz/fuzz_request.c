/* fuzz_request.c — libFuzzer target: the server's request parsing on
 * arbitrary bytes. The first byte picks the parser (route, chat, feedback,
 * model string, config file); the rest is the body. Invariants checked: a
 * rejected request carries a 4xx status, an error type and a message; an
 * accepted one routes on valid UTF-8 text inside its bounds, a tau in [0,1],
 * at most IPR_MAX_MODELS names. */
#include "ipr/err.h"
#include "ipr/serve.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned which = data[0] % 5;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct ipr_serve_request req;
    if (which <= 1) {
        int rc = ipr_serve_parse_request(which ? IPR_SERVE_CHAT : IPR_SERVE_ROUTE, body, len, &req);
        if (rc != IPR_OK) {
            if (req.status < 400 || req.status > 599 || !req.err_type || !req.err[0])
                __builtin_trap();
        } else {
            if (!req.text || !ipr_utf8_valid(req.text, req.text_len) || req.text_len > len)
                __builtin_trap();
            if (req.has_tau && !(req.tau >= 0 && req.tau <= 1))
                __builtin_trap();
            if (req.n_models > IPR_MAX_MODELS || (which == 1 && !req.router[0]))
                __builtin_trap();
            for (size_t i = 0; i < req.n_models; i++)
                if (!req.models[i])
                    __builtin_trap();
        }
        ipr_serve_request_free(&req);
    } else if (which == 2) {
        char id[64], err[128];
        double q;
        if (ipr_serve_parse_feedback(body, len, id, sizeof id, &q, err, sizeof err) == IPR_OK &&
            (!(q >= 0 && q <= 1) || strlen(id) >= sizeof id))
            __builtin_trap();
    } else if (which == 3) {
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, body, len);
        s[len] = '\0';
        memset(&req, 0, sizeof req);
        req.rule = -1;
        if (ipr_serve_parse_model_spec(s, &req) == IPR_OK && (!req.router[0] || (req.has_tau && !(req.tau >= 0 && req.tau <= 1))))
            __builtin_trap();
        free(s);
    } else {
        struct ipr_serve_config cfg;
        ipr_serve_config_defaults(&cfg);
        if (ipr_serve_config_parse(body, len, "fuzz.json", &cfg) != IPR_OK && !ipr_error_message()[0])
            __builtin_trap();
        ipr_serve_config_free(&cfg);
    }
    return 0;
}
