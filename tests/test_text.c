/*
 * test_text.c — the normaliser (NFKC, case folding, quotes, UTF-8 repair), the
 * GloVe-style tokenizer, and the prompt view on synthetic few-shot prompts.
 */
#include "check.h"
#include "ipr/err.h"
#include "ipr/text.h"

#include <stdint.h>

static struct ipr_text *T;

static const char *norm(const char *s, size_t n)
{
    static char buf[4096];
    const char *o;
    size_t on;
    if (ipr_text_normalize(T, s, n, &o, &on) != IPR_OK) return "(error)";
    snprintf(buf, sizeof buf, "%.*s", (int)on, o);
    return buf;
}
#define NORM(s) norm(s, sizeof(s) - 1)

/* Tokens joined by '|'. */
static const char *toks(const char *s, ipr_vocab_fn vocab)
{
    static char buf[4096];
    const char *x;
    size_t xn, n;
    const struct ipr_tok *t;
    if (ipr_text_tokenize(T, s, strlen(s), vocab, NULL, &x, &xn, &t, &n) != IPR_OK) return "(error)";
    size_t w = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && w + t[i].len + 2 < sizeof buf; i++) {
        if (i) buf[w++] = '|';
        memcpy(buf + w, x + t[i].off, t[i].len);
        w += t[i].len;
    }
    buf[w] = '\0';
    return buf;
}

/* A tiny vocabulary: knows "e-mail", "u.s." and "o'clock". */
static int32_t small_vocab(const void *ud, const char *w, size_t n)
{
    (void)ud;
    static const char *known[] = { "e-mail", "u.s.", "o'clock", "the" };
    for (int i = 0; i < 4; i++)
        if (strlen(known[i]) == n && memcmp(known[i], w, n) == 0) return i;
    return -1;
}

static void test_normalize(void)
{
    CHECK_STR(NORM("Hello WORLD"), "hello world");
    CHECK_STR(NORM("\xEF\xAC\x81nance"), "finance");              /* U+FB01 ligature */
    CHECK_STR(NORM("\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93"), "123"); /* full-width digits */
    CHECK_STR(NORM("Stra\xC3\x9F" "e"), "strasse");                 /* casefold ß */
    CHECK_STR(NORM("\xC3\x89T\xC3\x89"), "\xC3\xA9t\xC3\xA9");      /* ÉTÉ → été */
    CHECK_STR(NORM("e\xCC\x81"), "\xC3\xA9");                       /* e + combining acute composes */
    CHECK_STR(NORM("don\xE2\x80\x99t \xE2\x80\x9Cx\xE2\x80\x9D"), "don't \"x\"");
    CHECK_STR(NORM("a\tb\r\nc"), "a b \nc");
    /* invalid UTF-8: each bad byte becomes U+FFFD, never an error */
    CHECK_STR(NORM("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
    CHECK_EQ_INT(ipr_text_repaired(T), 1);
    CHECK_STR(NORM("\xC3"), "\xEF\xBF\xBD");                        /* truncated sequence */
    CHECK_STR(NORM("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");        /* overlong */
    CHECK_STR(NORM("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* surrogate */
    CHECK_STR(NORM(""), "");
    const char *o;
    size_t on;
    CHECK_EQ_INT(ipr_text_normalize(T, "x", IPR_TEXT_MAX_BYTES + 1, &o, &on), IPR_ERR_LIMIT);
}

static void test_tokenize(void)
{
    CHECK_STR(toks("I don't know, it's fine.", NULL), "i|do|n't|know|,|it|'s|fine|.");
    CHECK_STR(toks("Can't won't they're we'll I've I'm he'd", NULL),
              "ca|n't|wo|n't|they|'re|we|'ll|i|'ve|i|'m|he|'d");
    CHECK_STR(toks("cost $1,000.50 (3.14)...", NULL), "cost|$|1,000.50|(|3.14|)|...");
    CHECK_STR(toks("e-mail at 5 o'clock in the U.S. now", small_vocab),
              "e-mail|at|5|o'clock|in|the|u.s.|now");
    CHECK_STR(toks("state-of-art max_len os.path", small_vocab), "state|-|of|-|art|max|_|len|os|.|path");
    CHECK_STR(toks("a -- b", NULL), "a|--|b");
    CHECK_STR(toks("def f(x): return {x; y}", NULL), "def|f|(|x|)|:|return|{|x|;|y|}");
    CHECK_STR(toks("\xE6\x9D\xB1\xE4\xBA\xAC!", NULL), "\xE6\x9D\xB1|\xE4\xBA\xAC|!"); /* 東京! */
    CHECK_STR(toks("", NULL), "");
    CHECK_STR(toks("  \n\t ", NULL), "");
    /* newline flag and ids */
    const char *x;
    size_t xn, n;
    const struct ipr_tok *t;
    CHECK_EQ_INT(ipr_text_tokenize(T, "the\nthe x", 9, small_vocab, NULL, &x, &xn, &t, &n), IPR_OK);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(t[0].id, 3);
    CHECK(!(t[0].flags & IPR_TOK_NEWLINE));
    CHECK(t[1].flags & IPR_TOK_NEWLINE);
    CHECK_EQ_INT(t[2].id, -1);
    /* binary garbage tokenizes without error */
    char g[4096];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof g; i++) { s = s * 1103515245u + 12345u; g[i] = (char)(s >> 16); }
    CHECK_EQ_INT(ipr_text_tokenize(T, g, sizeof g, NULL, NULL, &x, &xn, &t, &n), IPR_OK);
    CHECK(n > 0);
}

/* Synthetic few-shot prompts: 3 shared worked examples and an instruction,
 * then a distinct question. */
static char *fewshot(int i)
{
    char *p = malloc(2048);
    snprintf(p, 2048,
             "Which gas do plants absorb?\nA) oxygen\nB) carbon dioxide\nAnswer:\nB\n\n"
             "What is the boiling point of water at sea level?\nA) 50 C\nB) 100 C\nAnswer:\nB\n\n"
             "Print only a single choice from \"A\" or \"B\" without explanation.\n"
             "Question %d: how many legs does animal number %d have?\nA) %d\nB) %d\nAnswer:",
             i, i, i % 7, i % 5 + 7);
    return p;
}

static void test_view(void)
{
    enum { N = 50 };
    char *p[N];
    size_t l[N];
    for (int i = 0; i < N; i++) { p[i] = fewshot(i); l[i] = strlen(p[i]); }
    struct ipr_view *v;
    CHECK_EQ_INT(ipr_view_learn((const char *const *)p, l, N, &v), IPR_OK);
    CHECK(ipr_view_size(v) >= 8);
    char out[2048];
    size_t w = ipr_view_apply(v, p[17], l[17], out, sizeof out);
    out[w] = '\0';
    CHECK(strstr(out, "Question 17: how many legs does animal number 17 have?") != NULL);
    CHECK(strstr(out, "boiling") == NULL);
    CHECK(strstr(out, "Print only") == NULL);
    CHECK(w < l[17] / 3);
    /* a prompt made only of boilerplate keeps its last segment */
    const char *bp = "Which gas do plants absorb?\nAnswer:";
    w = ipr_view_apply(v, bp, strlen(bp), out, sizeof out);
    CHECK_EQ_INT(w, strlen("Answer:"));
    CHECK(memcmp(out, "Answer:", w) == 0);
    /* unseen text passes unchanged; whitespace-only is kept */
    const char *nw = "Something new\nentirely";
    w = ipr_view_apply(v, nw, strlen(nw), out, sizeof out);
    CHECK_EQ_INT(w, strlen(nw));
    CHECK_EQ_INT(ipr_view_apply(v, "  ", 2, out, sizeof out), 2);
    CHECK_EQ_INT(ipr_view_apply(v, "", 0, out, sizeof out), 0);
    CHECK_EQ_INT(ipr_view_apply(v, nw, strlen(nw), out, 3), 0); /* cap < len refused */
    /* case and spacing do not matter for matching */
    const char *cs = "PRINT only  a single choice from \"A\" or \"B\" without explanation.\nmine";
    w = ipr_view_apply(v, cs, strlen(cs), out, sizeof out);
    CHECK_EQ_INT(w, 4);
    /* save / load round trip, and corrupt buffers rejected */
    uint8_t *buf;
    size_t bl;
    CHECK_EQ_INT(ipr_view_save(v, &buf, &bl), IPR_OK);
    struct ipr_view *v2;
    CHECK_EQ_INT(ipr_view_load(buf, bl, &v2), IPR_OK);
    CHECK_EQ_INT(ipr_view_size(v2), ipr_view_size(v));
    char out2[2048];
    size_t w2 = ipr_view_apply(v2, p[3], l[3], out2, sizeof out2);
    w = ipr_view_apply(v, p[3], l[3], out, sizeof out);
    CHECK(w == w2 && memcmp(out, out2, w) == 0);
    ipr_view_free(v2);
    CHECK_EQ_INT(ipr_view_load(buf, bl - 1, &v2), IPR_ERR_FORMAT);
    CHECK(v2 == NULL);
    CHECK_EQ_INT(ipr_view_load(buf, 10, &v2), IPR_ERR_FORMAT);
    buf[bl - 1] ^= 1;
    CHECK_EQ_INT(ipr_view_load(buf, bl, &v2), IPR_ERR_CHECKSUM);
    buf[bl - 1] ^= 1;
    buf[8] = 9;
    CHECK_EQ_INT(ipr_view_load(buf, bl, &v2), IPR_ERR_VERSION);
    free(buf);
    /* too few prompts: nothing is boilerplate (>= 5 prompts needed) */
    struct ipr_view *v3;
    CHECK_EQ_INT(ipr_view_learn((const char *const *)p, l, 4, &v3), IPR_OK);
    CHECK_EQ_INT(ipr_view_size(v3), 0);
    ipr_view_free(v3);
    ipr_view_free(v);
    for (int i = 0; i < N; i++) free(p[i]);
}

static void setup(void) { CHECK_EQ_INT(ipr_text_new(&T), IPR_OK); }
static void teardown(void) { ipr_text_free(T); }

TEST_MAIN(setup, test_normalize, test_tokenize, test_view, teardown)
