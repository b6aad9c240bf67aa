/* model_gguf.h — loading a model from GGUF files (model_gguf.c), called by model.c when the
 * path names a .gguf file or a folder of them. */
#ifndef VLM_ENGINE_MODEL_GGUF_H
#define VLM_ENGINE_MODEL_GGUF_H

struct vlm_model;
struct vlm_model_params;
struct vlm_error;

/* 1 if path is a .gguf file, or a folder with no config.json holding .gguf files. */
int vlm_model_is_gguf(const char *path);

/* Fills m (allocated, weights initialised, m->dir set) from path (a text .gguf, or a folder
 * holding one text file and at most one mmproj, told apart by general.architecture) and
 * p->mmproj (an mmproj .gguf or NULL): weights under the family's names, --dtype and
 * --quantization as for safetensors, config from metadata, the family's load, EOS/BOS, and
 * when p->load_tokenizer is set the tokenizer, chat template and image processor from
 * metadata. */
int vlm_model_load_gguf(struct vlm_model *m, const char *path, const struct vlm_model_params *p,
                        struct vlm_error *err);

/* model.c: applies p->dtype and p->quantization to m->weights before the family binds them. */
int vlm_model_prepare_weights(struct vlm_model *m, const struct vlm_model_params *p, struct vlm_error *err);

#endif
