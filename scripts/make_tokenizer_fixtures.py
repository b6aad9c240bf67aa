#!/usr/bin/env python3
"""Reference outputs for tests/test_tokenizer.c, made with Hugging Face `tokenizers`.

Builds a corpus of >= 2000 strings (English, code, CJK, Arabic and other scripts, emoji and
ZWJ sequences, combining marks, digit runs, whitespace runs and \\r\\n, invalid UTF-8,
special-token spellings, long random byte strings) and, for each tokenizer in
tests/fixtures/tokenizers/<name>/, writes <name>.ids.bin.xz with, per string:
  ids with add_special_tokens=True, ids with add_special_tokens=False, ids with
  encode_special_tokens=True (special spellings as plain text, add_special_tokens=False),
  ids for the model-folder case when they differ (post-processor rebuilt from
  tokenizer_config.json's add_bos_token/add_eos_token as transformers does),
  decode(ids_no_special, skip_special_tokens=False) and decode(ids, skip_special_tokens=True).
Invalid UTF-8 is given to HF after bytes.decode("utf-8", "replace"); the C test feeds the raw
bytes. Binary layout (little-endian): corpus.bin = "VTKC" u32 n, n x (u32 len, bytes);
<name>.ids.bin = "VTKI" u32 n, per string: u8 flags (1: folder ids differ), lists
(u32 count, i32 ids), strings (u32 len, bytes).

Run: /work/venv/bin/python scripts/make_tokenizer_fixtures.py  (needs tokenizers, transformers)
"""
import json, lzma, os, random, struct, sys

import tokenizers
from tokenizers import processors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tokenizers")
NAMES = ["smolvlm", "llama3", "qwen3", "gemma3", "mistral"]

ENGLISH = """The quick brown fox jumps over the lazy dog. I'm sure they'll say it's fine, but we'd
better check: don't you think? She said "Hello, World!" and left at 5:30pm on 2024-03-15.
Vision-language models read images and text; the tokenizer turns text into ids. It's 3.14159
and e=2.71828... Mr. O'Neil's dog (named Rex) isn't here. WHAT'S GOING ON?! I've been there.
Prices rose 12.5% to $1,234,567.89 in Q3. URLs like https://example.com/a?b=c&d=e#frag work.
Email me at john.doe+tag@example.org. The U.S.A. and the U.K. signed it. Hyphen-ated words,
em—dashes, en–dashes, ellipsis… and "smart quotes" with ‘single’ ones. #hashtag @mention
""".replace("\n", " ")

CODE = [
    "def f(x):\n    return x**2 + 1\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (i = 0; i < n; i++) { a[i] += b[i] * c; }",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "SELECT * FROM users WHERE id = 10 AND name LIKE '%bob%';",
    "    if x == 1:\n        pass\n    elif x != 2:\n        raise ValueError('bad')\n",
    "<div class=\"x\"><span>text</span></div>\n<!-- comment -->",
    "const f = async () => { await fetch(`/api/${id}`); };",
    "x = [i for i in range(100) if i % 3 == 0]  # comment",
    "#include <stdio.h>\r\n#define MAX(a,b) ((a)>(b)?(a):(b))\r\n",
    "fn main() { let v: Vec<u32> = (0..10).collect(); println!(\"{:?}\", v); }",
    "$ ls -la | grep '^d' && echo \"done\" >> log.txt 2>&1",
]

SCRIPTS = [
    "你好，世界！今天天气很好。我们去公园散步吧。",
    "日本語のテキストです。カタカナとひらがな、漢字が混ざっています。",
    "한국어 텍스트입니다. 안녕하세요, 반갑습니다!",
    "مرحبا بالعالم! هذا نص عربي للاختبار، مع أرقام ١٢٣٤٥.",
    "שלום עולם, זה טקסט בעברית.",
    "Привет, мир! Это тест на русском языке.",
    "Γειά σου Κόσμε! Αυτό είναι ελληνικό κείμενο.",
    "नमस्ते दुनिया! यह हिंदी में एक परीक्षण है।",
    "สวัสดีชาวโลก นี่คือข้อความภาษาไทย",
    "Xin chào thế giới! Đây là tiếng Việt có dấu.",
    "Ελληνικά, Ελλάδα; ΣΊΣΥΦΟΣ ςσΣ",
    "Türkçe: İstanbul, ığdır, ŞĞÜÖÇ",
    "Ẳ ǅ ﬁ ﬂ ß ẞ ſt Å Ω K ℃ ①②③ ¼ ½ ² ³",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
]

EMOJI = [
    "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🇺🇸🇯🇵🇩🇪", "❤️‍🔥", "👍🏿", "🧑‍🤝‍🧑", "😀😃😄😁", "🤖 says hi 👋",
    "✌️", "#️⃣", "1️⃣2️⃣", "🫠🫡🫶", "👁️‍🗨️", "🐈‍⬛",
]

COMBINING = [
    "e\u0301", "cafe\u0301", "n\u0303", "a\u0308o\u0308u\u0308", "Z\u0351\u0352\u0353a\u0354l\u0355g\u0356o\u0357",
    "\u1100\u1161\u11a8", "A\u030a", "\u0915\u094d\u0937", "o\u0302\u0323", "i\u0307", "\u00e9 vs e\u0301",
    "x\u0338", "\u05e9\u05c1\u05b8", "q\u0307\u0323",
]

WS = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\r", " \n", "\n ", "\t\t", " \t ", "\u00a0", "\u3000",
      "\u2028", "\u200b", "\ufeff", "\r\n\r\n", "    ", "\n\n\n"]


def special_spellings():
    out = set()
    for n in NAMES:
        d = json.loads(lzma.open(os.path.join(ROOT, n, "tokenizer.json.xz")).read())
        toks = [a["content"] for a in d["added_tokens"]]
        random.Random(n).shuffle(toks)
        out.update(toks[:25])
        out.update(a["content"] for a in d["added_tokens"] if a["special"] and len(a["content"]) < 40)
    extra = ["<image>", "<|im_start|>", "<|image_pad|>", "<start_of_image>", "<s>", "</s>", "<unk>",
             "<|begin_of_text|>", "<|eot_id|>", "<end_of_utterance>", "<fake_token_around_image>",
             "<row_1_col_1>", "<global-img>", "<|vision_start|>", "<bos>", "<pad>", "<mask>"]
    out.update(extra)
    return sorted(out)


def rand_unicode(r, n):
    cps = []
    while len(cps) < n:
        c = r.choice([r.randint(0x20, 0x7e), r.randint(0xa0, 0x2fff), r.randint(0x3000, 0x9fff),
                      r.randint(0xac00, 0xd7a3), r.randint(0x1f300, 0x1faff), r.randint(0x0300, 0x036f),
                      r.randint(0xe000, 0xf8ff), r.randint(0x10000, 0x10ffff), 10, 32, 32])
        if 0xd800 <= c <= 0xdfff:
            continue
        cps.append(chr(c))
    return "".join(cps)


def corpus():
    r = random.Random(1234)
    out = []
    words = ENGLISH.split()
    sents = [s.strip() + "." for s in ENGLISH.split(".") if s.strip()]
    out += sents + [" " + s for s in sents] + [s.lower() for s in sents] + [s.upper() for s in sents]
    out += CODE + SCRIPTS + EMOJI + COMBINING + WS
    out += ["", "a", " a", "a ", "'s", "'S", "'ll've", "ſ's", "don't", "DON'T", "I'M", "x'Y",
            "\u2581", "\u2581hello", "\u2581 \u2581", "<0x41>", "<0xZZ>", "\x00", "a\x00b", "\x7f\x01\x1b[0m",
            "\ufffd", "\U0010ffff", "\ue000"]
    for k in range(1, 41):
        out.append("".join(r.choice("0123456789") for _ in range(k)))
        out.append("v" + "".join(r.choice("0123456789") for _ in range(k)) + " items")
    out += ["1,000,000", "3.14159265358979", "٣٤٥", "१२३", "１２３", "1e-10", "0x1F", "2024-03-15T10:20:30Z"]
    for _ in range(120):
        out.append("".join(r.choice(WS + ["a", "b", " x", "."]) for _ in range(r.randint(1, 12))))
    specials = special_spellings()
    for sp in specials:
        out += [sp, "x" + sp + "y", " " + sp + " ", sp + sp, "Hello " + sp + "world", sp[:-1], sp + "\n"]
    # invalid UTF-8 as raw bytes
    raw = []
    bad = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
           b"\xe4\xbd", b"\xf0\x9f\x98", b"\xc3", b"\xbf\xbf", b"\xf8\x88\x80\x80\x80"]
    for b in bad:
        raw += [b, b"abc" + b + b"def", b + "你好".encode(), b" " + b + b" "]
    pool = [s for s in out if s]
    for _ in range(900):   # random mixtures
        parts = [r.choice(pool) for _ in range(r.randint(1, 6))]
        if r.random() < 0.3:
            parts.insert(r.randint(0, len(parts)), r.choice(specials))
        if r.random() < 0.3:
            parts.insert(r.randint(0, len(parts)), r.choice(WS))
        out.append(r.choice(["", " ", "\n"]).join(parts))
    for _ in range(200):
        out.append(rand_unicode(r, r.randint(1, 40)))
    for _ in range(60):
        raw.append(bytes(r.randint(0, 255) for _ in range(r.randint(1, 64))))
    for k in range(12):   # long random byte strings
        raw.append(bytes(r.randint(0, 255) for _ in range(r.randint(1000, 6000))))
        raw.append(rand_unicode(r, r.randint(500, 2000)).encode())
        raw.append(" ".join(r.choice(words) for _ in range(r.randint(300, 900))).encode())
    raw.append(b" " * 3000)
    raw.append(b"\n" * 1000 + b"x")
    raw.append(("9" * 2000).encode())
    raw.append(("\u2581" * 500).encode())
    data = [s.encode("utf-8") for s in out] + raw
    seen, uniq = set(), []
    for b in data:
        if b not in seen:
            seen.add(b)
            uniq.append(b)
    return uniq


def folder_tokenizer(name):
    """tokenizers.Tokenizer with the post-processor transformers builds for the folder."""
    d = lzma.open(os.path.join(ROOT, name, "tokenizer.json.xz")).read().decode()
    t = tokenizers.Tokenizer.from_str(d)
    cpath = os.path.join(ROOT, name, "tokenizer_config.json")
    cfg = json.loads(lzma.open(cpath + ".xz").read() if os.path.exists(cpath + ".xz") else open(cpath, "rb").read())
    def tokname(k):
        v = cfg.get(k)
        return v.get("content") if isinstance(v, dict) else v
    if "add_bos_token" in cfg or "add_eos_token" in cfg or t.post_processor is None:
        bos, eos = tokname("bos_token"), tokname("eos_token")
        add_bos = bool(cfg.get("add_bos_token")) and bos is not None
        add_eos = bool(cfg.get("add_eos_token")) and eos is not None
        single = (f"{bos}:0 " if add_bos else "") + "$A:0" + (f" {eos}:0" if add_eos else "")
        pair = single + (f" {bos}:1" if add_bos else "") + " $B:1" + (f" {eos}:1" if add_eos else "")
        sp = []
        if add_bos: sp.append((bos, t.token_to_id(bos)))
        if add_eos: sp.append((eos, t.token_to_id(eos)))
        t.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=sp)
    return t


def u32(n): return struct.pack("<I", n)
def ids_blob(ids): return u32(len(ids)) + struct.pack("<%di" % len(ids), *ids)
def str_blob(s):
    b = s.encode("utf-8")
    return u32(len(b)) + b


def synthetic_tokenizers(texts):
    """Small BPE tokenizers trained here, one per pipeline feature the five real files do
    not use (other Split behaviors, Metaspace, NFKC/NFD/Lowercase, regex Replace,
    lstrip/rstrip/single_word/normalized added tokens, Strip stop, EOS in the template)."""
    from tokenizers import Regex, AddedToken, models, trainers
    from tokenizers import pre_tokenizers as pt, normalizers as nm, decoders as dc, processors as pp
    gpt = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    # no NUL characters: jansson (the C side's JSON parser) cannot hold them in object keys
    train = [t for t in texts if len(t) < 400 and "\x00" not in t][:1500]

    def bytelevel(pre, norm=None, added=(), post=None, dec=None):
        t = tokenizers.Tokenizer(models.BPE())
        if norm is not None: t.normalizer = norm
        t.pre_tokenizer = pre
        t.decoder = dec or dc.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pt.ByteLevel.alphabet(), show_progress=False)
        t.train_from_iterator(train, tr)
        if added: t.add_tokens(list(added))
        t.add_special_tokens([AddedToken("<s>", special=True, normalized=False), AddedToken("</s>", special=True, normalized=False)])
        if post is not None: t.post_processor = post(t)
        return t

    def spm(norm, pre, dec, added=(), post=None):
        t = tokenizers.Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
        t.normalizer = norm
        if pre is not None: t.pre_tokenizer = pre
        t.decoder = dec
        tr = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
        t.train_from_iterator(train, tr)
        if added: t.add_tokens(list(added))
        if post is not None: t.post_processor = post(t)
        return t

    bl = lambda aps=False, rx=False: pt.ByteLevel(add_prefix_space=aps, use_regex=rx)
    tmpl = lambda t: pp.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B",
                                           special_tokens=[("<s>", t.token_to_id("<s>")), ("</s>", t.token_to_id("</s>"))])
    out = []
    for beh in ["removed", "merged_with_previous", "merged_with_next", "contiguous"]:
        out.append((f"split_{beh}", bytelevel(pt.Sequence([pt.Split(Regex(r"\s+|\p{P}"), beh), bl()]))))
    out.append(("split_invert", bytelevel(pt.Sequence([pt.Split(Regex(r"\p{L}+"), "isolated", invert=True), bl()]))))
    out.append(("split_string", bytelevel(pt.Sequence([pt.Split(" ", "merged_with_next"), bl()]))))
    out.append(("digits_contiguous_prefix", bytelevel(pt.Sequence([pt.Digits(individual_digits=False), bl(True, True)]))))
    out.append(("nfkc_lower_added", bytelevel(bl(True, True), nm.Sequence([nm.NFKC(), nm.Lowercase()]),
                added=[AddedToken("<im>", lstrip=True, rstrip=True, special=False, normalized=False),
                       AddedToken("word", single_word=True, normalized=False),
                       AddedToken("Hello", normalized=True)],
                post=tmpl)))
    out.append(("nfd_regex_replace", bytelevel(pt.Sequence([pt.Split(Regex(gpt), "isolated"), bl()]),
                nm.Sequence([nm.NFD(), nm.Replace(Regex(r"[0-9]+"), "#"), nm.NFKD()]))))
    for scheme in ["always", "first", "never"]:
        for split in [True, False]:
            out.append((f"metaspace_{scheme}_{int(split)}",
                        spm(nm.NFC(), pt.Metaspace(replacement="\u2581", prepend_scheme=scheme, split=split),
                            dc.Metaspace(replacement="\u2581", prepend_scheme=scheme),
                            added=[AddedToken("<im>", special=True, lstrip=True)])))
    # the official Llama 3 layout: post-processor Sequence[ByteLevel, TemplateProcessing(BOS)]
    bos_seq = lambda t: pp.Sequence([pp.ByteLevel(trim_offsets=False), pp.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", t.token_to_id("<s>"))])])
    out.append(("llama3_layout", bytelevel(pt.Sequence([pt.Split(Regex(gpt), "isolated"), bl()]), post=bos_seq)))
    out.append(("spm_strip_stop", spm(nm.Sequence([nm.Prepend("\u2581"), nm.Replace(" ", "\u2581")]), None,
                dc.Sequence([dc.Replace("\u2581", " "), dc.ByteFallback(), dc.Fuse(), dc.Strip(" ", 1, 1)]), post=tmpl)))
    return out


def safe_decode(t, ids, skip):
    """decode() as a string blob; u32 0xFFFFFFFF where HF itself panics (its Strip decoder
    with stop > 0 on an empty text indexes out of bounds), which the test skips."""
    try:
        return str_blob(t.decode(ids, skip_special_tokens=skip))
    except BaseException:
        return u32(0xFFFFFFFF)


def write_synthetic(texts):
    sub = [t for t in texts if len(t) < 3000][::8]
    blob = [b"VTKS", u32(0)]
    count = 0
    for name, t in synthetic_tokenizers(texts):
        js = json.loads(t.to_str())
        js["model"]["merges"] = [" ".join(m) if isinstance(m, list) and " " not in m[0] + m[1] else m
                                 for m in js["model"]["merges"]]   # exercise both merge encodings
        t = tokenizers.Tokenizer.from_str(json.dumps(js))
        tn = tokenizers.Tokenizer.from_str(t.to_str())
        tn.encode_special_tokens = True
        blob += [str_blob(name), str_blob(t.to_str()), u32(len(sub))]
        for s in sub:
            a = t.encode(s, add_special_tokens=True).ids
            p = t.encode(s, add_special_tokens=False).ids
            q = tn.encode(s, add_special_tokens=False).ids
            blob += [str_blob(s), ids_blob(a), ids_blob(p), ids_blob(q),
                     safe_decode(t, p, False), safe_decode(t, a, True)]
        count += 1
    blob[1] = u32(count)
    with lzma.open(os.path.join(ROOT, "synthetic.bin.xz"), "wb", preset=9) as f:
        f.write(b"".join(blob))
    print(f"synthetic: {count} tokenizers x {len(sub)} strings")


def compare_auto(texts):
    """Reports (does not store) where transformers' AutoTokenizer on a model folder disagrees
    with the folder ids above. transformers 5.x rebuilds some tokenizers from their class
    instead of tokenizer.json (GPT2Tokenizer drops SmolVLM's Digits pre-tokenizer,
    LlamaTokenizer swaps Mistral's normalizer for a Metaspace pre-tokenizer); vlm.c follows
    tokenizer.json, as tokenizers, transformers 4.x and llama.cpp do."""
    import shutil, tempfile, transformers
    for name in NAMES:
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "tokenizer.json"), "wb") as f:
            f.write(lzma.open(os.path.join(ROOT, name, "tokenizer.json.xz")).read())
        cpath = os.path.join(ROOT, name, "tokenizer_config.json")
        with open(os.path.join(d, "tokenizer_config.json"), "wb") as f:
            f.write(lzma.open(cpath + ".xz").read() if os.path.exists(cpath + ".xz") else open(cpath, "rb").read())
        auto = transformers.AutoTokenizer.from_pretrained(d)
        tf = folder_tokenizer(name)
        diff = sum(auto(s)["input_ids"] != tf.encode(s).ids for s in texts)
        print(f"{name}: AutoTokenizer (transformers {transformers.__version__}, {type(auto).__name__}) "
              f"differs from tokenizer.json + config on {diff} of {len(texts)} strings")
        shutil.rmtree(d)


def main():
    data = corpus()
    assert len(data) >= 2000, len(data)
    with lzma.open(os.path.join(ROOT, "corpus.bin.xz"), "wb", preset=9) as f:
        f.write(b"VTKC" + u32(len(data)))
        for b in data:
            f.write(u32(len(b)) + b)
    texts = [b.decode("utf-8", "replace") for b in data]
    if "--compare-auto" in sys.argv:
        compare_auto(texts)
        return
    write_synthetic(texts)
    if "--synthetic-only" in sys.argv:
        return
    for name in NAMES:
        t = tokenizers.Tokenizer.from_str(lzma.open(os.path.join(ROOT, name, "tokenizer.json.xz")).read().decode())
        tn = tokenizers.Tokenizer.from_str(t.to_str())
        tn.encode_special_tokens = True
        tf = folder_tokenizer(name)
        blob = [b"VTKI", u32(len(texts))]
        n_rt = n_fold = 0
        for s in texts:
            a = t.encode(s, add_special_tokens=True).ids
            p = t.encode(s, add_special_tokens=False).ids
            q = tn.encode(s, add_special_tokens=False).ids
            fo = tf.encode(s, add_special_tokens=True).ids
            dec = t.decode(p, skip_special_tokens=False)
            dsk = t.decode(a, skip_special_tokens=True)
            n_rt += dec == s
            flag = 1 if fo != a else 0
            n_fold += flag
            blob += [bytes([flag]), ids_blob(a), ids_blob(p), ids_blob(q)]
            if flag:
                blob.append(ids_blob(fo))
            blob += [str_blob(dec), str_blob(dsk)]
        with lzma.open(os.path.join(ROOT, name + ".ids.bin.xz"), "wb", preset=9) as f:
            f.write(b"".join(blob))
        print(f"{name}: {len(texts)} strings, decode round-trips {n_rt}, folder ids differ {n_fold}")
    print(f"tokenizers {tokenizers.__version__}")


if __name__ == "__main__":
    main()
