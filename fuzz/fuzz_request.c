/* fuzz_request.c — request JSON -> validated request (every endpoint's parser), the error body
 * built from any failure, and the URL parser/policy on every image URL the request names. */
#include "server/openai.h"
#include "server/url.h"
#include "util/alloc.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    struct vlm_api_limits lim;
    vlm_api_limits_default(&lim);
    lim.vocab_size = 50000;
    lim.max_images = (int)(data[0] % 4);       /* first byte: the image limit */
    enum vlm_api_kind kinds[] = {VLM_API_CHAT, VLM_API_COMPLETION, VLM_API_TOKENIZE, VLM_API_DETOKENIZE};
    for (int k = 0; k < 4; k++) {
        struct vlm_api_request r;
        struct vlm_api_error e;
        if (vlm_api_parse(kinds[k], (const char *)data + 1, size - 1, &lim, &r, &e) != 0) {
            char *b = vlm_api_error_body(&e);
            vlm_free(b);
            continue;
        }
        for (size_t i = 0; i < r.n_images; i++) {
            struct vlm_url u;
            if (vlm_url_parse(r.images[i].url, r.images[i].url_len, &u, NULL) == 0) {
                char *f = vlm_url_format(&u);
                vlm_free(f);
                vlm_url_free(&u);
            }
        }
        vlm_api_request_free(&r);
    }
    return 0;
}
