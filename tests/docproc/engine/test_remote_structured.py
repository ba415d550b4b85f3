"""The remote engine asks for structured output (response_format json_schema, as vLLM and SGLang take it),
checks the answer with jsonschema, asks once more, and fails the task with `invalid_output` after that."""

from collections.abc import Callable
from pathlib import Path

import pytest

from docproc.engine.remote import RemoteEngine
from docproc.ingestion import Page
from docproc.pipeline import ProgressReporter, Workspace
from docproc.settings import get_settings
from docproc.task_options import AskOptions
from docproc.tasks import TASKS, InvalidOutput, Job
from tests.docproc.engine.conftest import OpenAIServer

PAGES = [Page(1, "Minutes of the meeting."), Page(2, "The vault code of the cooperative is 7431.")]
QUESTION = AskOptions(question="What is the vault code?")


def job(tmp_path: Path) -> Job:
    return Job(PAGES, ProgressReporter(), Workspace(tmp_path / "job", "doc"), get_settings())


def test_a_valid_answer_keeps_only_the_quotes_on_their_pages(
    openai_server: OpenAIServer, server_config: Callable[..., None], tmp_path: Path
) -> None:
    server_config(
        reply='{"answer": "The code is 7431.", "citations": [{"page": 2, "quote": "vault code of the '
        'cooperative is 7431"}, {"page": 1, "quote": "is 7431"}]}'
    )
    before = openai_server.stats()["chat_requests"]
    outcome = TASKS["ask"].run(RemoteEngine(openai_server.url), QUESTION, job(tmp_path))
    assert outcome.answer == "The code is 7431."
    assert outcome.citations == [{"page": 2, "quote": "vault code of the cooperative is 7431"}]
    assert outcome.dropped_quotes == 1 and outcome.source_pages == [[1, 2]]
    stats = openai_server.stats()
    assert stats["chat_requests"] == before + 1
    response_format = stats["last_request"]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["required"] == ["answer", "citations"]


@pytest.mark.parametrize("reply", ["The code is 7431.", '{"answer": "7431"}'])
def test_output_off_the_schema_is_asked_again_then_fails_with_the_raw_text(
    openai_server: OpenAIServer, server_config: Callable[..., None], tmp_path: Path, reply: str
) -> None:
    server_config(reply=reply)
    before = openai_server.stats()["chat_requests"]
    with pytest.raises(InvalidOutput) as failure:
        TASKS["ask"].run(RemoteEngine(openai_server.url), QUESTION, job(tmp_path))
    assert failure.value.code == "invalid_output"
    assert f"Raw output: {reply}" in str(failure.value)
    assert openai_server.stats()["chat_requests"] == before + 2
