"""Freed host memory goes back to the OS between prefill chunks (glibc)."""

import platform
from pathlib import Path

import pytest
import torch

from model.memory import release_free_host_memory


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_temporaries_between_long_lived_blocks_are_returned() -> None:
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
    assert before - resident_mib() > 64, "the heap's free pages stayed resident"
    assert len(kept) == 128
