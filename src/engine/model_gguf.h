/* model_gguf.h — loading a model from GGUF files (model_gguf.c), called by model.c when the
 * path names a .gguf file or a folder of them. */
#ifndef VLM_ENGINE_MODEL_GGUF_H
#define VLM_ENGINE_MODEL_GGUF_H

struct vlm_model;
struct vlm_error;

/* 1 if path is a .gguf file, or a folder with no config.json holding .gguf files. */
int vlm_model_is_gguf(const char *path);

/* Fills m (allocated, weights initialised, m->dir set) from path (a text .gguf, or a folder
 * holding one text file and at most one mmproj, told apart by general.architecture) and
 * mmproj (an mmproj .gguf or NULL): weights under the family's names, config from metadata,
 * the family's load, EOS/BOS, and when load_text is set the tokenizer, chat template and
 * image processor from metadata. */
int vlm_model_load_gguf(struct vlm_model *m, const char *path, const char *mmproj, int load_text,
                        struct vlm_error *err);

#endif
