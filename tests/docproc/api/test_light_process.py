"""The API and the CLI's client side stay light: importing them, building the app and counting an upload's
tokens loads neither torch, transformers nor the model code."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import service_env

HEAVY = ("torch", "transformers", "model")
PROGRAM = f"""
import sys
import docproc.cli
from docproc.api.app import create_app
from docproc.engine import get_tokenizer
from docproc.task_options import validated_options

create_app()
validated_options("ask", {{"question": "Who runs the cooperative?", "temperature": 0.5}})
assert sum(map(len, get_tokenizer().encode_batch(["A short page about the cooperative."]))) > 3
print(sorted(name for name in sys.modules if name.split(".")[0] in {HEAVY!r}))
"""


def test_the_api_imports_no_torch_transformers_or_model(tmp_path: Path, default_model: Path) -> None:
    env = service_env(tmp_path, f"sqlite:///{tmp_path / 'docproc.db'}")
    loaded = subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
