"""runtime/allocator.py: a process that builds its runtime gives freed large buffers back."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

# After a 24 MiB buffer is freed, glibc would serve 16 MiB ones (a source batch's size) from its
# heap and keep them once freed; small blocks between them stop the heap from shrinking.
_SCRIPT = """
import ctypes, re
from pathlib import Path
from runtime.container import build_runtime
from runtime.settings import load_settings

build_runtime(load_settings())
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\\s+(\\d+) kB", status).group(1)) // 1024

def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block

libc.free(touched(24 << 20))
before = rss_mb()
blocks, between = [], []
for _ in range(4):
    blocks.append(touched(16 << 20))
    between.append(touched(100 << 10))
held = rss_mb()
for block in blocks:
    libc.free(block)
print(before, held, rss_mb())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
def test_freed_source_batches_go_back_to_the_os(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "FRESHCACHE_DATA_DIR": str(tmp_path)},
    )
    before, held, after = map(int, result.stdout.split())
    assert held - before >= 60, (before, held)  # the four buffers were there
    assert after - before < 8, (before, held, after)
