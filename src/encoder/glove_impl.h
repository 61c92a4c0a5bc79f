/*
 * glove_impl.h — internals shared by the GloVe encoder's files: the on-disk
 * format (written by glove_convert.c, mapped by glove_file.c) and the
 * vocabulary lookup used by the embedder (glove.c).
 *
 * File format ".ipre" (version 1), little-endian, every section 64-aligned:
 *
 *   offset 0   struct glove_hdr (256 bytes)
 *                magic "IPRGLOVE", version, header_size, file_size,
 *                checksum = XXH3_64 of bytes [header_size, file_size) seeded
 *                with XXH3_64 of the header with this field zeroed,
 *                word_dim, n_words, table_cap (power of two >= 2 n_words),
 *                feature layout: n_hash (hashed n-gram dims), ngram_min/max,
 *                n_stats, tail_tokens, out_dim = 2 word_dim + n_hash + n_stats,
 *                sif_a, hash_seed, section offsets, name, source.
 *   off_table  u64[table_cap]: 0 = empty, else (XXH3(word) >> 32) << 32 | (id + 1);
 *              linear probing from XXH3(word) & (table_cap - 1).
 *   off_stroff u32[n_words + 1]: word id's bytes are strings[stroff[id] .. stroff[id+1]).
 *   off_strings the words' UTF-8 bytes, concatenated (len_strings bytes).
 *   off_vectors f32[n_words][word_dim], word id = frequency rank (0 = most frequent).
 *
 * Every offset and length is checked against file_size on open, the table's
 * entries and stroff are checked, and the checksum is verified.
 */
#ifndef IPR_GLOVE_IMPL_H
#define IPR_GLOVE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ipr/encoder.h"

#define GLOVE_MAGIC   "IPRGLOVE"
#define GLOVE_VERSION 1u
#define GLOVE_HDR_SIZE 256u
#define GLOVE_ALIGN   64u

/* Feature layout defaults written by the converter. */
#define GLOVE_N_HASH      256u
#define GLOVE_NGRAM_MIN   3u
#define GLOVE_NGRAM_MAX   5u
#define GLOVE_N_STATS     16u
#define GLOVE_TAIL_TOKENS 64u
#define GLOVE_SIF_A       1e-3f
#define GLOVE_HASH_SEED   0x1b873593a5a5f00dULL

struct glove_hdr {
    char magic[8];
    uint32_t version, header_size;
    uint64_t file_size;
    uint64_t checksum;
    uint32_t word_dim, n_words, table_cap, n_hash;
    uint32_t ngram_min, ngram_max, n_stats, tail_tokens;
    uint32_t out_dim;
    float sif_a;
    uint64_t hash_seed;
    uint64_t off_table, off_stroff, off_strings, len_strings, off_vectors;
    char name[64];
    char source[64];
    uint8_t reserved[GLOVE_HDR_SIZE - 8 - 8 - 16 - 16 - 16 - 8 - 8 - 40 - 128];
};

_Static_assert(sizeof(struct glove_hdr) == GLOVE_HDR_SIZE, "glove header is 256 bytes");

/* The mapped model. */
struct glove {
    const uint8_t *map;
    size_t map_len;
    const struct glove_hdr *h;
    const uint64_t *table;
    const uint32_t *stroff;
    const char *strings;
    const float *vectors;
    float zipf_h; /* harmonic number H(n_words), for p(w) = 1 / ((rank+1) H) */
};

/* Word id or -1. */
int32_t glove_lookup(const struct glove *g, const char *w, size_t n);

/* Maps and validates an encoder file (struct glove allocated). */
int glove_open_file(const char *path, struct glove **out);
void glove_close_file(struct glove *g);

/* The ops table of the GloVe encoder (glove.c). */
extern const struct ipr_encoder_ops glove_ops;

/* Streams a wink-embeddings JSON document from f and writes the encoder file
 * out_path atomically (temp file, fsync, rename). what names f in errors. */
int glove_convert_stream(FILE *f, const char *what, const char *out_path, const char *source);

#endif
