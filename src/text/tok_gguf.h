/* tok_gguf.h — pieces shared by the GGUF tokenizer builders (tok_gguf.c, tok_gguf_spm.c). */
#ifndef VLM_TEXT_TOK_GGUF_H
#define VLM_TEXT_TOK_GGUF_H

#include <jansson.h>
#include <stddef.h>

struct vlm_error;

/* SentencePiece -> BPE merges: appends to merges (["l", "r"] pairs) every split of each piece
 * into two pieces of vocab (piece -> id), ordered as transformers' SentencePieceExtractor. */
int tok_gguf_spm_merges(const char *const *pieces, const size_t *lens, const float *scores, size_t n,
                        json_t *vocab, json_t *merges, struct vlm_error *err);

#endif
