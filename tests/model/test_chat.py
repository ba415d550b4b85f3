"""The offline test tokenizer, chat-template prompts and thinking/answer splitting."""

from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from transformers import AutoTokenizer

from model import GREEDY, INSTRUCT, HybridLM
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


def test_a_token_mask_constrains_every_sampled_token(checkpoint: Callable[..., Path]) -> None:
    lm = HybridLM.from_pretrained(checkpoint())
    allowed = torch.tensor([5, 17, 23])
    seen: list[list[int]] = []

    def only_allowed(tokens: list[int], logits: torch.Tensor) -> torch.Tensor:
        seen.append(list(tokens))
        masked = torch.full_like(logits, float("-inf"))
        masked[allowed] = logits[allowed]
        return masked

    sampling = INSTRUCT.with_(seed=1)
    generate = partial(
        lm.generate, prompt_ids=[1, 2, 3], max_new_tokens=12, sampling=sampling, stop_token_ids=[]
    )
    reply = generate(lm.new_state(), token_mask=only_allowed)
    free = generate(lm.new_state())
    assert len(reply) == 12 and set(reply) <= {5, 17, 23}
    assert not set(free) <= {5, 17, 23}  # without the mask the model goes elsewhere
    # The mask sees the tokens generated so far before each step.
    assert seen == [reply[:n] for n in range(12)]
