"""Convert a GGUF file into a regular checkpoint directory: `python -m docproc.engine.gguf GGUF FOLDER`.

Run as a child process (docproc.engine.resolve_model) so that only it imports torch and transformers.
"""

import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def convert(gguf: Path, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are de-quantised already; drop the GGUF marker so that they save as a plain checkpoint.
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(tmp)
    try:
        tmp.replace(folder)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(tmp)


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
