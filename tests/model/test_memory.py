"""Freed host memory goes back to the OS between prefill chunks (glibc)."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def released_by_trim_mib() -> float:
    """Heap memory freed between long-lived blocks, then trimmed: the MiB the trim gave back."""
    import torch

    from model.memory import release_free_host_memory

    # Free one 16 MiB mmapped buffer first: glibc then raises its mmap threshold, so the 1 MiB buffers below
    # come from the heap, as a chunk's temporaries do once a prefill is under way.
    large = torch.ones(4 * 2**20)  # 16 MiB
    del large
    kept, temporaries = [], []
    for _ in range(128):  # temporaries interleaved with long-lived blocks, as KV blocks are
        temporaries.append(torch.ones(2**18))  # 1 MiB, touched
        kept.append(torch.ones(2**14))  # 64 KiB, allocated above it
    del temporaries
    before = resident_mib()
    release_free_host_memory()
    assert len(kept) == 128
    return before - resident_mib()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_temporaries_between_long_lived_blocks_are_returned() -> None:
    # A fresh process: the heap of one that ran other tests holds free pages and a raised mmap threshold
    # of its own, so what the trim returns there depends on the tests before.
    code = (
        "import json; from tests.model.test_memory import released_by_trim_mib as m; print(json.dumps(m()))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) > 64, "the heap's free pages stayed resident"
