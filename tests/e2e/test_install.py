"""`make install` into a temporary prefix: bin/vlm, libvlm.a, libvlm.so.0 (SONAME), vlm.h and
vlm.pc; then examples/c/ask.c builds from the installed files with pkg-config (shared, and
static against libvlm.a) and answers the demo question."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, find_bin

DEMO = os.path.join(ROOT, "models", "vlm-demo")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    vlm = find_bin()
    if not vlm or not shutil.which("pkg-config") or not shutil.which("cc"):
        pytest.skip("needs a built vlm, cc and pkg-config")
    build = os.path.dirname(vlm)
    p = str(tmp_path_factory.mktemp("prefix"))
    out = subprocess.run(["cmake", "--install", build, "--prefix", p], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return p


def pc(prefix, *args):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    out = subprocess.run(["pkg-config", *args, "vlm"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_installed_files(prefix):
    for f in ("bin/vlm", "include/vlm.h", "lib/libvlm.a", "lib/libvlm.so", "lib/libvlm.so.0", "lib/pkgconfig/vlm.pc"):
        assert os.path.exists(os.path.join(prefix, f)), f
    dyn = subprocess.run(["objdump", "-p", os.path.join(prefix, "lib", "libvlm.so")], capture_output=True, text=True).stdout
    assert "SONAME               libvlm.so.0" in dyn
    assert pc(prefix, "--modversion") == [subprocess.run([os.path.join(prefix, "bin", "vlm"), "version"],
                                                         capture_output=True, text=True).stdout.split()[1]]
    assert "jansson" in " ".join(pc(prefix, "--print-requires-private"))


@pytest.mark.parametrize("link", ["shared", "static"])
def test_example_program_answers(prefix, tmp_path, link):
    exe = str(tmp_path / "ask")
    src = os.path.join(ROOT, "examples", "c", "ask.c")
    if link == "shared":
        cmd = ["cc", "-Wall", "-Wextra", "-Werror", src, *pc(prefix, "--cflags", "--libs"),
               f"-Wl,-rpath,{prefix}/lib", "-o", exe]
    else:   # libvlm.a, then what Requires.private names (as pkg-config --static lists it)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
        req = subprocess.run(["pkg-config", "--print-requires-private", "vlm"], env=env, capture_output=True,
                             text=True).stdout.split()
        deps = subprocess.run(["pkg-config", "--libs", *req], capture_output=True, text=True).stdout.split()
        cmd = ["cc", "-Wall", "-Wextra", "-Werror", src, *pc(prefix, "--cflags"), os.path.join(prefix, "lib", "libvlm.a"),
               *deps, "-lgif", "-lpthread", "-lm", "-o", exe]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    run = subprocess.run([exe, DEMO, os.path.join(DEMO, "example.png"), "What is shown in the image?"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "A blue triangle and a red circle.", run.stdout
