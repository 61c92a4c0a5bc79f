/* fuzz_text.c — libFuzzer target: the normaliser, the tokenizer and the
 * prompt view on arbitrary bytes. Invariants: the normalised text is valid
 * UTF-8, every token lies inside it and is non-empty, the view's output is
 * never longer than its input and never empty for input with a non-space
 * byte, and a saved view loads back and behaves the same; ipr_view_load on
 * the raw bytes never crashes. */
#include "ipr/err.h"
#include "ipr/text.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int32_t vocab(const void *ud, const char *w, size_t n)
{
    (void)ud;
    return n == 3 && memcmp(w, "the", 3) == 0 ? 0 : (n == 6 && memcmp(w, "e-mail", 6) == 0 ? 1 : -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ipr_text *t;
    if (!t && ipr_text_new(&t) != IPR_OK) __builtin_trap();
    const char *x;
    size_t xn, n;
    const struct ipr_tok *tok;
    if (ipr_text_tokenize(t, (const char *)data, size, vocab, NULL, &x, &xn, &tok, &n) != IPR_OK) __builtin_trap();
    for (size_t i = 0; i < xn;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t r = utf8proc_iterate((const uint8_t *)x + i, (utf8proc_ssize_t)(xn - i), &cp);
        if (r <= 0) __builtin_trap();
        i += (size_t)r;
    }
    for (size_t k = 0; k < n; k++)
        if (tok[k].len == 0 || (size_t)tok[k].off + tok[k].len > xn) __builtin_trap();

    /* the view: the input's NUL-separated pieces are the training prompts */
    const char *texts[64];
    size_t lens[64], m = 0, start = 0;
    for (size_t i = 0; i <= size && m < 64; i++)
        if (i == size || data[i] == 0) {
            texts[m] = (const char *)data + start;
            lens[m++] = i - start;
            start = i + 1;
        }
    struct ipr_view *v, *w;
    if (ipr_view_learn(texts, lens, m, &v) != IPR_OK) __builtin_trap();
    char *out = malloc(size + 1), *out2 = malloc(size + 1);
    size_t got = ipr_view_apply(v, (const char *)data, size, out, size);
    int any = 0;
    for (size_t i = 0; i < size; i++) any |= data[i] != ' ' && data[i] != '\n' && data[i] != '\t' && data[i] != '\r' && data[i] != '\v' && data[i] != '\f';
    if (got > size || (any && got == 0)) __builtin_trap();
    uint8_t *buf;
    size_t bl;
    if (ipr_view_save(v, &buf, &bl) != IPR_OK || ipr_view_load(buf, bl, &w) != IPR_OK) __builtin_trap();
    size_t got2 = ipr_view_apply(w, (const char *)data, size, out2, size);
    if (got2 != got || memcmp(out, out2, got) != 0) __builtin_trap();
    ipr_view_free(w);
    free(buf);
    ipr_view_free(v);
    if (ipr_view_load(data, size, &w) == IPR_OK) ipr_view_free(w);
    free(out);
    free(out2);
    return 0;
}
