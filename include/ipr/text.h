/*
 * text.h — the text normaliser, the tokenizer and the prompt view.
 *
 * Normaliser: repairs invalid UTF-8 (each bad byte becomes U+FFFD), applies
 * Unicode NFKC and case folding (utf8proc), and maps typographic quotes to
 * ASCII ones (’ ‘ → ', “ ” → ") so that contractions and quotes meet the
 * GloVe vocabulary. Pure ASCII words take a fast path (lowercasing); only
 * words holding non-ASCII bytes go through utf8proc.
 *
 * Tokenizer: splits normalised text the way GloVe 6B's corpus was tokenised
 * (Stanford PTB style): punctuation is its own token, "don't" → "do" "n't",
 * "can't" → "ca" "n't", "it's" → "it" "'s" (also 're 'll 've 'm 'd); numbers
 * with internal "." or "," stay whole ("3.14", "1,000"); words joined by "-",
 * ".", "_" or "'" stay whole when the vocabulary callback knows them
 * ("e-mail", "u.s.") and are split at the joiners otherwise ("max_len" →
 * "max" "_" "len"); "..." and "--" are single tokens; each CJK ideograph,
 * kana or hangul syllable is a token of its own.
 *
 * Memory: a struct ipr_text owns scratch buffers that grow to the largest
 * input seen; steady-state calls allocate nothing. Results point into that
 * scratch and stay valid until the next call on the same ipr_text. One
 * ipr_text per thread.
 *
 * Prompt view: a boilerplate filter learned from training prompts (see the
 * ipr_view_* functions at the end).
 */
#ifndef IPR_TEXT_H
#define IPR_TEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ipr_text;

/* Token flags. */
enum {
    IPR_TOK_WORD    = 1u << 0, /* letters (maybe with digits) */
    IPR_TOK_NUM     = 1u << 1, /* starts with a digit */
    IPR_TOK_PUNCT   = 1u << 2, /* punctuation or symbol */
    IPR_TOK_CJK     = 1u << 3, /* one CJK ideograph / kana / hangul syllable */
    IPR_TOK_NEWLINE = 1u << 4, /* a newline came between this token and the previous */
    IPR_TOK_NONLATIN= 1u << 5, /* holds a non-ASCII letter */
};

struct ipr_tok {
    uint32_t off, len; /* span in the normalised text */
    int32_t id;        /* vocabulary id from the lookup callback, -1 if none */
    uint32_t flags;    /* IPR_TOK_* */
};

/* Vocabulary lookup used by the tokenizer: returns an id >= 0 or -1. */
typedef int32_t (*ipr_vocab_fn)(const void *ud, const char *word, size_t len);

/* Inputs above this many bytes are refused with IPR_ERR_LIMIT. */
#ifndef IPR_TEXT_MAX_BYTES
#define IPR_TEXT_MAX_BYTES ((size_t)8 << 20)
#endif

int  ipr_text_new(struct ipr_text **out);
void ipr_text_free(struct ipr_text *t);

/* Normalises len bytes of s (any bytes; repaired). *out points into t's
 * scratch (NUL-terminated, valid UTF-8) until the next call on t. */
int ipr_text_normalize(struct ipr_text *t, const char *s, size_t len,
                       const char **out, size_t *out_len);

/* Normalises then tokenizes. vocab may be NULL (joined words then split at
 * their joiners unless they are numbers). *text receives the normalised text
 * the tokens point into; *toks the n tokens. */
int ipr_text_tokenize(struct ipr_text *t, const char *s, size_t len,
                      ipr_vocab_fn vocab, const void *ud,
                      const char **text, size_t *text_len,
                      const struct ipr_tok **toks, size_t *n);

/* Counts from the last ipr_text_normalize/tokenize: bytes repaired to U+FFFD. */
size_t ipr_text_repaired(const struct ipr_text *t);

/* --- prompt view: drop boilerplate learned from training prompts ---
 *
 * A prompt is cut into segments (lines; a line longer than 200 bytes is cut
 * further after ". ", "? " and "! "). A segment is keyed by the XXH3 hash of
 * its text with whitespace collapsed and ASCII lowercased. learn() keeps the
 * keys whose document frequency among the training prompts is >= 2 % and
 * >= 5 prompts: few-shot examples, shared instructions, system prompts.
 * apply() copies the text without those segments (kept segments separated by
 * "\n"). If every segment of a non-empty prompt is boilerplate, apply()
 * returns the last non-blank segment, so the result is never empty for a
 * prompt with any non-space byte. */
struct ipr_view;

int    ipr_view_learn(const char *const *texts, const size_t *lens, size_t n,
                      struct ipr_view **out);
/* Returns the bytes written to out (never more than len); out needs
 * cap >= len. Never allocates; a NULL view copies the text unchanged. */
size_t ipr_view_apply(const struct ipr_view *v, const char *text, size_t len,
                      char *out, size_t cap);
/* Serialises to a malloc'd buffer (caller frees). */
int    ipr_view_save(const struct ipr_view *v, uint8_t **buf, size_t *len);
/* Parses and validates a buffer written by ipr_view_save. */
int    ipr_view_load(const uint8_t *buf, size_t len, struct ipr_view **out);
void   ipr_view_free(struct ipr_view *v);
/* Number of boilerplate segment keys learned. */
size_t ipr_view_size(const struct ipr_view *v);

#ifdef __cplusplus
}
#endif
#endif
