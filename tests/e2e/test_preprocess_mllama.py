"""`vlm preprocess` on a Llama 3.2 Vision processor folder (the one transformers'
MllamaImageProcessor().save_pretrained writes): the printed tile canvas and the .npy it
writes, tile by tile equal to transformers' pixel_values (hashes from
scripts/make_mllama_fixtures.py). Stdlib only."""
import hashlib
import json
import lzma
import os
import subprocess

import pytest

from conftest import ROOT, find_bin

FX = os.path.join(ROOT, "tests", "fixtures", "mllama")


@pytest.mark.parametrize("image,grid,aid", [("pano_3000x700.jpg", (1, 4), 4), ("square_1200.jpg", (2, 2), 6),
                                            ("tall_480x1000.jpg", (3, 1), 7)])
def test_preprocess_mllama_default_folder(tmp_path, image, grid, aid):
    vlm = find_bin()
    if not vlm:
        pytest.skip("no vlm binary: build it (make build) or set VLM_BIN")
    out = tmp_path / "pv.npy"
    r = subprocess.run([vlm, "preprocess", os.path.join(FX, "default"), "--image",
                        os.path.join(FX, "images", image), "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    n = grid[0] * grid[1]
    assert f"pixel_values: ({n}, 3, 224, 224) f32" in r.stdout
    assert f"[{grid[0]} x {grid[1]} tiles of the canvas, aspect_ratio_id {aid}]" in r.stdout
    assert "image tokens: 1" in r.stdout and "prompt: <|image|>*1" in r.stdout
    data = out.read_bytes()
    assert data[:6] == b"\x93NUMPY"
    body = data[10 + int.from_bytes(data[8:10], "little"):]
    plane = 3 * 224 * 224 * 4
    assert len(body) == n * plane
    refs = json.loads(lzma.open(os.path.join(FX, "manifest.json.xz")).read())["processor"]
    ref = next(c for c in refs if c["config"] == "default" and c["name"] == "../mllama/images/" + image)
    assert ref["n_tiles"] == n and ref["aspect_ratio_id"] == aid
    got = [hashlib.sha256(body[t * plane:(t + 1) * plane]).hexdigest() for t in range(n)]
    assert got == ref["tile_sha256"]
