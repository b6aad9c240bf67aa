#!/usr/bin/env python3
"""Reference outputs for tests/test_chat_template.c, made by transformers itself.

For each real chat template (Llama 3, Qwen3, Gemma 3, SmolVLM, Qwen2.5-VL, LLaVA-1.5 and
Llama 3.2 Vision) and each conversation below, renders the prompt the way
`apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does, with both
values of add_generation_prompt, and writes tests/fixtures/templates/cases.json:
  [{"template": DIR, "messages": [...], "add_generation_prompt": bool, "kwargs": {...},
    "expected": "..."} or {..., "error": true}]
The template folders (chat_template.jinja / chat_template.json / tokenizer_config.json /
special_tokens_map.json) are copied into tests/fixtures/templates/<name>/ so the C test finds
templates and special tokens the same way `vlm chat-template` does.

Sources:
- shared/tokenizers/{llama3,qwen3,gemma3,smolvlm}/tokenizer_config.json (template in the file);
  gemma3's 1.1 MB file is trimmed to the keys the renderer reads (its added_tokens_decoder
  keeps only the entries named by *_token keys).
- shared/models/{Qwen--Qwen2.5-VL-3B-Instruct,llava-hf--llava-1.5-7b-hf,
  HuggingFaceTB--SmolVLM-256M-Instruct}/ (chat_template.jinja, .json, tokenizer configs).
  Qwen2.5-VL ships no tokenizer_config here, so the Qwen2 vocabulary's (qwen3) is used for
  its special tokens, as the Qwen2.5-VL processor shares that tokenizer.
- Llama 3.2 Vision, two templates:
  * llama32_vision_test: transformers' own test template for MllamaProcessor,
    tests/models/mllama/test_processor_mllama.py (prepare_processor_dict), huggingface/
    transformers commit 01080c629600d4ff3121446bb4f4a2e240c2cf41;
  * llama32_vision: the published meta-llama/Llama-3.2-11B-Vision-Instruct template (the one
    that raises "Prompting with images is incompatible with system messages."), as embedded
    verbatim in the Swift Jinja port's tests (Tests/JinjaTests/ChatTemplateTests.swift,
    constant llama3_2visionChatTemplate; repository maiqingqiang/Jinja, also mattt/Jinja),
    kept in scripts/data/llama32_vision_chat_template.jinja. Rendered with
    date_string="26 Jul 2024" so the output does not depend on today's date.

The reference renderer is transformers.utils.chat_template_utils.render_jinja_template with
the messages normalised as apply_chat_template does (None-valued keys dropped; for processors,
OpenAI image_url blocks turned into {"type": "image", "url": ...}) and the tokenizer's
special_tokens_map. Where a real tokenizer.json is available the script also loads
AutoTokenizer and checks that tokenizer.apply_chat_template gives the same text and the same
special_tokens_map as the emulation the C code uses.

Run: /work/venv/bin/python scripts/make_template_fixtures.py [SHARED_DIR]
"""
import copy
import json
import lzma
import os
import shutil
import sys
import tempfile

from transformers import AutoTokenizer
from transformers.processing_utils import ProcessorMixin
from transformers.utils.chat_template_utils import _normalize_chat_messages, render_jinja_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(ROOT), "shared")
OUT = os.path.join(ROOT, "tests", "fixtures", "templates")

LLAMA32_TEST_TEMPLATE = (
    "{% for message in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<|image|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def tok_dir(name):
    return os.path.join(SHARED, "tokenizers", name)


def model_dir(name):
    return os.path.join(SHARED, "models", name)


def copy_files(dst, files):
    os.makedirs(dst, exist_ok=True)
    for src, name in files:
        shutil.copyfile(src, os.path.join(dst, name))


def write_trimmed_config(src, dst):
    cfg = json.load(open(src, encoding="utf-8"))
    names = {v if isinstance(v, str) else v.get("content") for k, v in cfg.items()
             if k.endswith("_token") and isinstance(v, (str, dict))}
    if "added_tokens_decoder" in cfg:
        cfg["added_tokens_decoder"] = {k: v for k, v in cfg["added_tokens_decoder"].items()
                                       if v.get("content") in names}
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)


def setup_templates():
    """Creates tests/fixtures/templates/<name>/; returns {name: (tokenizer_json_or_None, processor)}."""
    if os.path.isdir(OUT):
        for name in os.listdir(OUT):
            p = os.path.join(OUT, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
    t = {}
    for name in ("llama3", "qwen3", "smolvlm"):
        copy_files(os.path.join(OUT, name), [(os.path.join(tok_dir(name), "tokenizer_config.json"), "tokenizer_config.json")])
        t[name] = (os.path.join(tok_dir(name), "tokenizer.json.xz"), False)
    write_trimmed_config(os.path.join(tok_dir("gemma3"), "tokenizer_config.json"),
                         os.path.join(OUT, "gemma3", "tokenizer_config.json"))
    t["gemma3"] = (os.path.join(tok_dir("gemma3"), "tokenizer.json.xz"), False)
    qvl = model_dir("Qwen--Qwen2.5-VL-3B-Instruct")
    copy_files(os.path.join(OUT, "qwen2_5_vl"), [(os.path.join(qvl, "chat_template.jinja"), "chat_template.jinja"),
                                                 (os.path.join(tok_dir("qwen3"), "tokenizer_config.json"), "tokenizer_config.json")])
    t["qwen2_5_vl"] = (os.path.join(tok_dir("qwen3"), "tokenizer.json.xz"), True)
    llava = model_dir("llava-hf--llava-1.5-7b-hf")
    copy_files(os.path.join(OUT, "llava_1_5"), [(os.path.join(llava, f), f) for f in
               ("chat_template.jinja", "chat_template.json", "tokenizer_config.json", "special_tokens_map.json")])
    t["llava_1_5"] = (None, True)
    smol = model_dir("HuggingFaceTB--SmolVLM-256M-Instruct")
    copy_files(os.path.join(OUT, "smolvlm_256m"), [(os.path.join(smol, f), f) for f in
               ("chat_template.json", "tokenizer_config.json", "special_tokens_map.json")])
    t["smolvlm_256m"] = (None, True)
    d = os.path.join(OUT, "llama32_vision_test")
    copy_files(d, [(os.path.join(tok_dir("llama3"), "tokenizer_config.json"), "tokenizer_config.json")])
    with open(os.path.join(d, "chat_template.json"), "w", encoding="utf-8") as f:
        json.dump({"chat_template": LLAMA32_TEST_TEMPLATE}, f, indent=2)
    t["llama32_vision_test"] = (None, True)
    copy_files(os.path.join(OUT, "llama32_vision"),
               [(os.path.join(ROOT, "scripts", "data", "llama32_vision_chat_template.jinja"), "chat_template.jinja"),
                (os.path.join(tok_dir("llama3"), "tokenizer_config.json"), "tokenizer_config.json")])
    t["llama32_vision"] = (None, True)
    return t


def find_template(d):
    """As vlm_chat_template_find: chat_template.jinja, chat_template.json, tokenizer_config.json."""
    p = os.path.join(d, "chat_template.jinja")
    if os.path.exists(p):
        return open(p, encoding="utf-8").read()
    for f in ("chat_template.json", "tokenizer_config.json"):
        p = os.path.join(d, f)
        if os.path.exists(p):
            v = json.load(open(p, encoding="utf-8")).get("chat_template")
            if isinstance(v, list):
                v = {e["name"]: e["template"] for e in v}["default"]
            if v is not None:
                return v
    raise FileNotFoundError(d)


def token_text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def special_tokens(d):
    """The emulation the C code uses (vlm_chat_template_special_tokens)."""
    out = {}

    def add(cfg):
        for k, v in cfg.items():
            if k.endswith("_token") and token_text(v) is not None:
                out[k] = token_text(v)
        if isinstance(cfg.get("extra_special_tokens"), dict):
            for k, v in cfg["extra_special_tokens"].items():
                if token_text(v) is not None:
                    out[k] = token_text(v)

    cfg = {}
    p = os.path.join(d, "tokenizer_config.json")
    if os.path.exists(p):
        cfg = json.load(open(p, encoding="utf-8"))
        add(cfg)
    p = os.path.join(d, "special_tokens_map.json")
    if "added_tokens_decoder" not in cfg and os.path.exists(p):
        add(json.load(open(p, encoding="utf-8")))
    return out


def img(url=None):
    return {"type": "image"} if url is None else {"type": "image", "url": url}


def txt(s):
    return {"type": "text", "text": s}


CONVERSATIONS = [
    ("user_str", [{"role": "user", "content": "Hello, how are you?"}], {}),
    ("system_user_str", [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "What is 2+2?"}], {}),
    ("multi_turn_str", [{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Hi!"},
                        {"role": "assistant", "content": "Hello. How can I help?"},
                        {"role": "user", "content": "  Tell me a joke.  \n"}], {}),
    ("ends_with_assistant", [{"role": "user", "content": "Name a color."},
                             {"role": "assistant", "content": "Blue."}], {}),
    ("user_list_text", [{"role": "user", "content": [txt("Describe the weather.")]}], {}),
    ("image_then_text", [{"role": "user", "content": [img(), txt("What is in this image?")]}], {}),
    ("text_then_image", [{"role": "user", "content": [txt("Look at this:"), img()]}], {}),
    ("images_interleaved", [{"role": "user", "content": [txt("Compare "), img(), txt(" and "), img(),
                                                         txt(" please.")]}], {}),
    ("two_images_first", [{"role": "user", "content": [img(), img(), txt("What do these images show?")]},
                          {"role": "assistant", "content": [txt("The first image shows the Statue of Liberty.")]},
                          {"role": "user", "content": [txt("And who is that?")]}], {}),
    ("system_list_multi_image", [{"role": "system", "content": [txt("You describe images.")]},
                                 {"role": "user", "content": [img(), txt("Caption this.")]},
                                 {"role": "assistant", "content": [txt("A cat on a mat.")]},
                                 {"role": "user", "content": [img(), img(), txt("Now these two.")]}], {}),
    ("image_urls", [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "What is shown?"}]}], {}),
    ("image_with_url_key", [{"role": "user", "content": [img("https://example.com/b.jpg"), txt("Describe.")]}], {}),
    ("unicode_and_quotes", [{"role": "user", "content": "Héllo wörld — 你好 👋🏽 \"quoted\" 'single' \\ back\tslash"},
                            {"role": "assistant", "content": "Réponse: ça va ✓"},
                            {"role": "user", "content": "Line1\nLine2\r\nLine3"}], {}),
    ("special_token_spellings", [{"role": "user", "content": "<|im_end|> <image> <|eot_id|> {{ not_a_var }} {% raw %}"}], {}),
    ("empty_content", [{"role": "user", "content": ""}], {}),
    ("null_keys_dropped", [{"role": "user", "content": "hi", "name": None}], {}),
    ("thinking_assistant", [{"role": "user", "content": "Think about 2+2."},
                            {"role": "assistant", "content": "<think>\nIt is 4.\n</think>\n\nThe answer is 4."},
                            {"role": "user", "content": "And 3+3?"}], {}),
    ("reasoning_content", [{"role": "user", "content": "Why?"},
                           {"role": "assistant", "content": "Because.", "reasoning_content": "Let me think."}], {}),
    ("tool_call", [{"role": "user", "content": "Weather in Paris?"},
                   {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
                       "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
                   {"role": "tool", "content": "{\"temp\": 21}"},
                   {"role": "user", "content": "Thanks"}], {}),
    ("roles_not_alternating", [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}], {}),
    ("system_only", [{"role": "system", "content": "Only a system prompt."}], {}),
    ("long_conversation", [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: " + "word " * (i + 1)}
                           for i in range(9)], {}),
    ("enable_thinking_false", [{"role": "user", "content": "Quick answer: 1+1?"}], {"enable_thinking": False}),
    ("add_vision_id", [{"role": "user", "content": [img(), txt("first"), img(), txt("second")]}], {"add_vision_id": True}),
]


UNITS = [
    "{{ '12' | int(7, 61) }}{{ 'z' | int(0, 36) }}{{ '0x1f' | int(0, 0) }}{{ '12' | int(0, 1) }}{{ '1e3' | int }}{{ ' 7 ' | int }}",
    "{% macro k(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ k(1, 2, 3, z=4) }}|{{ k(0) }}",
    "{% macro k() %}x{% endmacro %}{% call k() %}y{% endcall %}",
    "{% macro k(a) %}{{ a }}{% endmacro %}{{ k(1, z=2) }}",
    "{% macro k(a) %}{{ a }}{{ caller is defined }}{% endmacro %}{{ k(1) }}{% macro j() %}{{ kwargs }}{% endmacro %}{{ j() }}",
    "{{ 0.0 % -2 }}{{ -0.0 % 2 }}{{ 5 % -3 }}{{ 5.5 % -2 }}|{{ 'a%sb' % 1 }}{{ 'x' % () }}{{ 'x' % {} }}",
    "{{ 'x' % 'y' }}",
    "{{ '%s %s' % (1,) }}",
    "{{ d }}{% set d = 2 %}{{ d }}|{% for i in [1] %}{{ d }}{% endfor %}{% set d = 3 %}{{ d }}",
    "{% macro m() %}{{ d }}{% endmacro %}{{ m() }}{% set d = 2 %}{{ m() }}",
    "{% macro m() %}{{ d }}{% endmacro %}{{ m() }}{% if false %}{% set d = 2 %}{% endif %}",
    "{% macro m() %}{{ d }}{% endmacro %}{{ m() }}{% if false %}{% set d = 2 %}{% else %}{% set d = 3 %}{% endif %}{{ m() }}",
    "{% macro m() %}{{ d }}{% endmacro %}{% for i in [1] %}{% set d = 4 %}{{ m() }}{% endfor %}",
    "{% if true %}{{ d }}{% set d = 5 %}{% endif %}{{ d }}|{% for i in [1,2] %}{{ d }}{% set d = i %}{% endfor %}",
    "{% set d = d.a + 1 %}{{ d }}{% macro m() %}{{ d }}{% endmacro %}{{ m() }}",
    "{{ 5 | round }}{{ true | round }}{{ 7 | round(1, 'floor') }}{{ 2.675 | round(2) }}{{ (0 | round) * 'x' }}|",
    "{{ d.keys() }}{{ d.values() }}{{ d.items() }}{{ d.keys() | list }}{{ 'a' in d.keys() }}",
    "{{ {'a': 'é😀\\u2028'} | tojson(ensure_ascii=true) }}{{ ['é'] | tojson(ensure_ascii=false) }}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d | length }}{{ d.values() | sum }}",
    '{% set c = 0 %}{% for i in [1,2] %}{% set c = c + 1 %}{{c}}{% endfor %}{{c}}',
    '{% set l = [1] %}{% set _ = l.append(2) %}{{l}}',
    '{{ x.y }}',
    '{{ x.y.z }}',
    '{{ none.y }}',
    "{{ [1,2,'a'] }} {{ {'a':1,'b':[None,True]} }} {{ (1,) }} {{ 1.0 }} {{ 1e20 }} {{ 0.00001 }} {{ 10/4 }} {{ 7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 2**-1 }}",
    "{{ 'a' ~ 1 ~ none }}",
    "{{ 'abc'[::-1] }} {{ [1,2,3][1:] }} {{ 'héllo'[1] }}",
    '{{ "it\'s" }} {{ [\'it\\\'s\', "a\\"b", \'x\\ny\'] }}',
    "{{ {'a': 'é', 'b': [1, 2.5, none, true]} | tojson }} {{ {'a':1} | tojson(indent=2) }}",
    '{{ x | length }} {{ x is defined }} {{ x }}',
    "{{ 1 == true }} {{ 'a' in 'abc' }} {{ 'a' in {'a':1} }}",
    '{% for a in [] %}x{% else %}empty{% endfor %}',
    "{{ 'a' + 1 }}",
    '{{ undefined_thing + 1 }}',
    "{% for k, v in {'a':1,'b':2}.items() %}{{k}}={{v}},{% endfor %}",
    "{{ 'Hello World'.split() }} {{ ' a b '.split(' ') }} {{ 'a,b,c'.rsplit(',', 1) }}",
    "{{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'hello' | capitalize }}|{{ 'hELLo wORLD' | title }}",
    '{{ [3,1,2] | sort }} {{ [1,2,2,3] | unique | list }} {{ [1,2,3] | batch(2) | list }}',
    '{% macro f(a, b=2) %}{{a}}-{{b}}{% endmacro %}{{ f(1) }} {{ f(1, b=3) }}',
    "{{ raise_exception('boom') }}",
    '{{ x.y.z }}',
    "{{ [1,2][5] }}|{{ {'a':1}['b'] }}|{{ 'abc'.nonexist }}",
    "{{ 1.5|round }} {{ 2.5|round }} {{ 3.14159|round(2) }} {{ -1|abs }} {{ '3'|int + 1 }} {{ 'x'|int }} {{ '2.5'|float }}",
    '{{ True }} {{ none }} {{ 3 > 2.5 }} {{ [1] == [1] }}',
    '{% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{{ ns.a }} {{ ns }}',
    '{{ messages[0].role }}',
    "{{ 'a' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }}",
    "{{ '%s-%d' % ('a', 2) }}",
    "{{ '{}-{}'.format('a', 2) }}",
    '{{ 1.0 == 1 }} {{ 5 / 0 }}',
    "{{ x | default('dflt') }} {{ '' | default('e', true) }} {{ none | default('n') }}",
    "{{ [1,2,3] | first }} {{ 'abc' | last }} {{ [1,2,3] | join(',') }} {{ [{'a':1},{'a':2}] | map(attribute='a') | list }}",
    '{{ loop }}',
    '{{ range(3) | list }} {{ range(1,7,2)|list }}',
    '{% if true %}\n  a\n{% endif %}\n  b  \n{%- if 1 %} c {% endif -%}  \n d',
    '  {% for i in [1,2] %}\n    {{ i }}\n  {% endfor %}\nend\n',
    '{# comment #}\nx{#- c -#}  y  {#+ c #}z',
    '{% raw %}{{ not }}{% endraw %}\n{%- raw -%}  {% x %}  {%- endraw %}|',
    'a\r\nb\rc\n\n',
    '{{ \'\\u00e9\\x41\\n\' }}|{{ "a\\tb" }}',
    '{% for a, b in [[1,2],[3,4]] %}{{ a }}{{ b }}{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{% endfor %}',
    '{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}{% else %}none{% endfor %}',
    '{% for x in range(10) %}{% if x > 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}',
    "{% for x in [1,2,3] %}{{ loop.cycle('a','b') }}{{ loop.previtem }}{{ loop.nextitem }}{% endfor %}",
    '{% for a in [1] %}{% for b in [2] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}{% endfor %}',
    '{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]',
    '{% set x | upper %}block{% endset %}[{{ x }}]',
    "{% filter upper %}hello {{ 'x' }}{% endfilter %}",
    '{% macro m(a) %}<{{ a }}|{{ caller() }}>{% endmacro %}{% call m(1) %}inner{% endcall %}',
    '{% macro m() %}{{ caller(5) }}{% endmacro %}{% call(v) m() %}v={{ v }}{% endcall %}',
    '{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}',
    "{{ 1 if true else 2 }}{{ 1 if false else 2 }}{{ 'x' if none }}",
    "{{ not true }}{{ true and 'a' }}{{ false or 'b' }}{{ 0 or none }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 2 }}",
    "{{ 'b' not in 'abc' }}{{ 2 in [1,2] }}{{ 'x' ~ 'y' }}{{ -3 // 2 }}{{ -3.5 // 2 }}{{ 7 % -3 }}{{ 2 ** 3 ** 2 }}",
    '{{ 10 / 3 }}{{ 1e-7 }}{{ 123456789.123456789 }}{{ 1.5e300 * 1e10 }}{{ -0.0 }}{{ 0.1 + 0.2 }}',
    "{{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}] }}{{ ('a',) }}{{ () }}",
    '{{ {\'a\': "it\'s"} }}{{ [\'a\\\\b\'] }}',
    "{{ 'hello world foo'.split(' ', 1) }}{{ '  a  b  '.split() }}{{ 'a b c'.split(none, 1) }}{{ 'a  b  c  '.rsplit(none, 1) }}",
    "{{ 'abc'.startswith(('x','a')) }}{{ 'abc'.endswith('bc') }}{{ 'Hello'.find('l') }}{{ 'Hello'.rfind('l') }}{{ 'aaa'.count('a') }}",
    "{{ 'hello'.replace('l', 'L') }}{{ 'hello'.replace('l', 'L', 1) }}{{ 'ab'.replace('', '-') }}",
    "{{ '-'.join(['a','b']) }}{{ 'hello world'.title() }}{{ 'HELLO'.lower() }}{{ 'hello'.upper() }}{{ 'hELLO'.capitalize() }}",
    "{{ '\\n\\nx\\n'.strip('\\n') }}|{{ 'xxyxx'.lstrip('x') }}|{{ 'xxyxx'.rstrip('x') }}",
    "{{ [3, 1, 2] | sort(reverse=true) }}{{ ['b', 'A', 'c'] | sort }}{{ ['b', 'A', 'c'] | sort(case_sensitive=true) }}",
    "{{ [{'n': 2}, {'n': 1}] | sort(attribute='n') }}{{ {'b': 1, 'a': 2} | dictsort }}",
    "{{ ['a', 'A', 'b'] | unique | list }}{{ [1,2,3,4,5] | batch(2, 'x') | list }}",
    "{{ 'x' | indent(2) }}|{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}",
    "{{ 'one two  three' | wordcount }}{{ 'hello' | center(11) }}|{{ 'hello world' | title }}{{ 'a-b c(d' | title }}",
    "{{ [1,2,3] | sum }}{{ [1,5,3] | max }}{{ [4,2,8] | min }}{{ [1,2] | reverse | list }}{{ 'abc' | reverse }}",
    "{{ 'abc' | list }}{{ {'a':1} | list }}{{ {'a':1} | items | list }}{{ 5 | string }}{{ none | string }}",
    "{{ [1,2,3,4] | select('odd') | list }}{{ [1,2,3,4] | reject('odd') | list }}{{ ['a','b'] | map('upper') | list }}",
    "{{ [{'t':'a','x':1},{'t':'b'}] | selectattr('t','equalto','a') | list }}{{ [{'t':'a','x':1},{'t':'b'}] | rejectattr('x') | list }}",
    "{{ [{'t':'a','x':1},{'t':'b'}] | map(attribute='x', default=0) | list }}{{ [{'a':{'b':3}}] | map(attribute='a.b') | list }}",
    '{{ \'a<b>&"\\\'\' | e }}{{ \'x\' | safe }}{{ \'%s=%d\' | format(\'a\', 3) }}{{ 3.7 | int }}{{ \'0x1A\' | int(0, 16) }}{{ \'12\' | float }}',
    '{{ {\'a\': [1, {\'b\': none}], \'c\': \'é\\n"\'} | tojson }}{{ [1,2] | tojson(indent=2) }}{{ {\'a\':1,\'b\':2} | tojson(separators=(\',\',\':\')) }}{{ {\'b\':1,\'a\':2} | tojson(sort_keys=true) }}',
    "{{ x is defined }}{{ x is undefined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ true is boolean }}{{ [] is sequence }}",
    '{{ true is true }}{{ false is false }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 3 is gt 2 }}{{ 6 is divisibleby 3 }}{{ 3 is odd }}{{ 4 is even }}{{ 1 is in [1] }}{{ 1 is sameas 1 }}',
    "{{ 1 is not none }}{{ 'x' is not string }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'upper' is filter }}{{ 'odd' is test }}",
    "{{ messages[0]['role'] }}{{ messages[-1].content }}{{ messages[1] is defined }}{{ messages[0].nope is defined }}",
    "{{ 'abcdef'[1:4] }}{{ 'abcdef'[::2] }}{{ 'abcdef'[-2:] }}{{ [1,2,3,4][::-2] }}{{ [1,2,3][5:] }}{{ 'héllo'[1:3] }}",
    '{% set ns = namespace(items=[], n=0) %}{% for i in [1,2] %}{% set ns.items = ns.items + [i] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.items }}{{ ns.n }}',
    '{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}',
    "{% macro f(a, b=a~'!') %}{{ a }}{{ b }}{% endmacro %}{{ f('x') }}{{ f('x', 'y') }}{{ f(b='q', a='p') }}",
    '{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(5) }}',
    '{{ dict(a=1, b=2) }}{{ namespace(a=1).a }}{{ range(5) | list }}{{ range(5, 0, -2) | list }}',
    "{{ 'a' 'b' }}{{ 1_000 }}{{ 0b101 if false else 3 }}",
    '{%- for m in messages -%}\n  {{- m.role }}:{{ m.content -}}\n{%- endfor %}\n\n',
    "{{ '{}, {}!'.format('Hello', 'World') }}{{ '{0}{1}{0}'.format('a', 'b') }}{{ '{name}'.format(name='n') }}",
    "{{ 'a,b'.split(',') | join('+') }}{{ [1,2] | join }}{{ [{'n':'x'},{'n':'y'}] | join(', ', attribute='n') }}",
    "{{ {'a':1}.items() | list }}{{ {'a':1}.get('b') }}{{ {'a':1}.get('b', 'd') }}{{ {'a':1}.values() | list }}",
    "{{ 'x' * 3 }}{{ [0] * 3 }}{{ 3 * 'ab' }}{{ 1 + 2.5 }}{{ true + 1 }}{{ 7 // 2.0 }}{{ -7 % 3.0 }}",
    "{{ '  \\n text \\t ' | trim }}|{{ 'xxtextxx' | trim('x') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ undefinedvar | d('u') }}",
    "{{ [] | first }}|{{ [1,2] | first }}{{ [1,2] | last }}{{ {'a':1,'b':2} | first }}|{{ [1,2,3] | length }}{{ 'héllo' | length }}{{ {'a':1} | count }}",
    "{{ 3.14159 | round(2) }}{{ 3.5 | round }}{{ 4.5 | round }}{{ 3.2 | round(method='ceil') }}{{ 3.8 | round(0, 'floor') }}{{ -5 | abs }}{{ -2.5 | abs }}",
    "{{ 'Hello' ~ 5 ~ none ~ true }}{{ [1] ~ 'x' }}",
    '{% if messages %}yes{% elif false %}no{% else %}else{% endif %}{% if not messages %}A{% elif messages|length == 1 %}B{% else %}C{% endif %}',
    "{{ 'a\\u2028b' | tojson }}{{ ['é', 'tab\\t'] }}",
    "{% for k in {'z':1,'a':2} %}{{ k }}{% endfor %}{% for c in 'ab' %}{{ c }}{% endfor %}{% for x in undefinedvar %}X{% else %}E{% endfor %}",
    "{{ messages | map(attribute='role') | join(',') }}{{ messages | selectattr('role', 'eq', 'user') | list | length }}",
    "{{ 'abc' is sequence }}{{ 5 is iterable }}{{ none is mapping }}{{ x is number }}{{ 'a' is in 'abc' }}",
    "{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ [1,2] == [1,2] }}{{ {'a':1} == {'a':1} }}{{ none == none }}{{ (1,2) == [1,2] }}",
    "{{ 'ab' < 'b' }}{{ [1,2] < [1,3] }}{{ 2 >= 2.0 }}",
    '{{ loop is defined }}{% for i in [1] %}{{ loop.index0 }}{% endfor %}',
    "{{ 'Ünïcödé' | upper }}{{ 'ÀÉÎ' | lower }}{{ 'straße' | upper }}",
    "{{ '%.2f' | format(3.14159) }}{{ '%r' % 'x' }}{{ '%(a)s' % {'a': 1} }}",
    "{{ 'x'.removeprefix('x') }}{{ 'a=b=c'.partition('=') }}{{ 'a=b=c'.rpartition('=') }}{{ '5'.zfill(3) }}{{ 'ab'.ljust(4, '*') }}|{{ 'ab'.rjust(4) }}",
    "{{ 'line1\\nline2\\r\\nline3'.splitlines() }}{{ '12'.isdigit() }}{{ 'ab'.isalpha() }}{{ '  '.isspace() }}",
    "{{ (1 if false) }}|{{ d.get('a', 5) }}|{{ d.get('zz') }}",
]

UNIT_CONTEXT = {"messages": [{"role": "user", "content": "hi"}], "d": {"a": 1, "b": 2}}


def unit_cases():
    """Single constructs rendered by transformers' own Jinja environment."""
    from transformers.utils.chat_template_utils import _compile_jinja_template
    out = []
    for src in UNITS:
        case = {"template": src}
        try:
            case["expected"] = _compile_jinja_template(src).render(**copy.deepcopy(UNIT_CONTEXT))
        except Exception as e:
            case["error"] = True
            case["error_text"] = f"{type(e).__name__}: {e}"
        out.append(case)
    return out


# Rendered with continue_final_message=True (and add_generation_prompt=False).
CONTINUE = [
    ("continue_str", [{"role": "user", "content": "Finish: the sky is"}, {"role": "assistant", "content": "The sky is"}]),
    ("continue_trailing_space", [{"role": "user", "content": "Go on"}, {"role": "assistant", "content": "Once upon a time "}]),
    ("continue_list", [{"role": "user", "content": [img(), txt("Describe.")]},
                       {"role": "assistant", "content": [txt("It shows")]}]),
    ("continue_user", [{"role": "user", "content": "Complete this sentence"}]),
]


def reference(template, special, messages, gen, kwargs, processor, cont=False):
    conv = copy.deepcopy(messages)
    if processor:
        convs, _ = ProcessorMixin._normalize_conversations(None, conv)
    else:
        convs = [_normalize_chat_messages(conv)]
    rendered, _ = render_jinja_template(conversations=convs, tools=None, documents=None, chat_template=template,
                                        add_generation_prompt=gen, continue_final_message=cont, **{**special, **kwargs})
    return rendered[0]


def check_with_tokenizer(name, d, tokjson_xz, special, cases):
    """Loads the real tokenizer and checks special tokens and apply_chat_template against ours."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in os.listdir(d):
            shutil.copyfile(os.path.join(d, f), os.path.join(tmp, f))
        with lzma.open(tokjson_xz) as src, open(os.path.join(tmp, "tokenizer.json"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        tok = AutoTokenizer.from_pretrained(tmp)
        real = {k: str(v) for k, v in tok.special_tokens_map.items()}
        if real != special:
            print(f"  note {name}: special_tokens_map {real} != emulated {special}")
        n = 0
        for c in cases:
            if c["template"] != name or any(isinstance(p, dict) and p.get("type") == "image_url"
                                            for m in c["messages"] if isinstance(m.get("content"), list)
                                            for p in m["content"]):
                continue
            try:
                got = tok.apply_chat_template(copy.deepcopy(c["messages"]), tokenize=False,
                                              add_generation_prompt=c["add_generation_prompt"],
                                              continue_final_message=c.get("continue_final_message", False), **c["kwargs"])
            except Exception:
                got = None
            want = None if c.get("error") else c["expected"]
            assert got == want, (name, c["messages"], got, want)
            n += 1
        print(f"  {name}: tokenizer.apply_chat_template agrees on {n} cases")


def main():
    templates = setup_templates()
    cases = []
    for name, (tokjson, processor) in templates.items():
        d = os.path.join(OUT, name)
        template = find_template(d)
        special = special_tokens(d)
        for cname, messages, kwargs in CONVERSATIONS:
            kw = dict(kwargs)
            if name == "llama32_vision":
                kw["date_string"] = "26 Jul 2024"
            for gen in (False, True):
                case = {"template": name, "conversation": cname, "messages": messages,
                        "add_generation_prompt": gen, "kwargs": kw, "processor": processor}
                try:
                    case["expected"] = reference(template, special, messages, gen, kw, processor)
                except Exception as e:  # the C renderer must fail too
                    case["error"] = True
                    case["error_text"] = f"{type(e).__name__}: {e}"
                cases.append(case)
        for cname, messages in CONTINUE:
            kw = {"date_string": "26 Jul 2024"} if name == "llama32_vision" else {}
            case = {"template": name, "conversation": cname, "messages": messages, "add_generation_prompt": False,
                    "continue_final_message": True, "kwargs": kw, "processor": processor}
            try:
                case["expected"] = reference(template, special, messages, False, kw, processor, cont=True)
            except Exception as e:
                case["error"] = True
                case["error_text"] = f"{type(e).__name__}: {e}"
            cases.append(case)
        if tokjson and not processor:
            check_with_tokenizer(name, d, tokjson, special, cases)
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    units = unit_cases()
    with open(os.path.join(OUT, "units.json"), "w", encoding="utf-8") as f:
        json.dump({"context": UNIT_CONTEXT, "cases": units}, f, ensure_ascii=False, indent=1)
    print(f"{len(units)} construct cases -> {OUT}/units.json")
    errors = sum(1 for c in cases if c.get("error"))
    print(f"{len(cases)} cases ({errors} expected errors) over {len(templates)} templates -> {OUT}/cases.json")


if __name__ == "__main__":
    main()
