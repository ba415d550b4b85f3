"""The offline test tokenizer, chat-template prompts and thinking/answer splitting."""

from collections.abc import Callable
from pathlib import Path

from transformers import AutoTokenizer

from model import GREEDY, HybridLM
from model.chat import build_prompt, split_thinking


def test_random_checkpoint_tokenizer_and_chat_template(checkpoint: Callable[..., Path]) -> None:
    path = checkpoint()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    lm = HybridLM.from_pretrained(path)
    assert len(tokenizer) == lm.config.vocab_size
    assert lm.config.eos_token_ids == (tokenizer.convert_tokens_to_ids("<|im_end|>"),)
    messages = [{"role": "user", "content": "Summarize: the licensee may copy the program."}]
    text = tokenizer.decode(build_prompt(tokenizer, messages, enable_thinking=False))
    assert text == (
        "<|im_start|>user\nSummarize: the licensee may copy the program.<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    assert tokenizer.decode(build_prompt(tokenizer, messages)).endswith("<|im_start|>assistant\n")
    reply = lm.generate(lm.new_state(), build_prompt(tokenizer, messages), max_new_tokens=5, sampling=GREEDY)
    assert 1 <= len(reply) <= 5


def test_split_thinking() -> None:
    assert split_thinking("<think>\nweigh the clauses\n</think>\n\nIt is GPL.") == (
        "weigh the clauses",
        "It is GPL.",
    )
    assert split_thinking("weigh the clauses</think>It is GPL.") == ("weigh the clauses", "It is GPL.")
    assert split_thinking("It is GPL.") == ("", "It is GPL.")
