"""Chat-template prompts, and splitting a Thinking model's reasoning from its answer."""

from typing import Any

THINK_END = "</think>"
THINK_START = "<think>"


def build_prompt(
    tokenizer: Any, messages: list[dict[str, str]], enable_thinking: bool | None = None
) -> list[int]:
    """Token ids of `messages` (role/content dicts) ready for the assistant's reply.

    `enable_thinking` goes to templates that know it (Qwen3 hybrid ones); None keeps the template default.
    """
    options = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **options)
    return tokenizer.encode(text, add_special_tokens=False)


def split_thinking(text: str) -> tuple[str, str]:
    """(thinking, answer) of a reply. Thinking templates open `<think>` in the prompt, so the reply may hold
    only the closing tag; without `</think>` the whole reply is the answer."""
    if THINK_END not in text:
        return "", text.strip()
    thinking, answer = text.split(THINK_END, 1)
    return thinking.replace(THINK_START, "", 1).strip(), answer.strip()
