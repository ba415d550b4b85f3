"""Tiny random Qwen3-Next checkpoints with a locally trained tokenizer, for tests and benchmarks (offline).

`make_random_checkpoint(dir)` writes config.json, model.safetensors (through transformers' own
`Qwen3NextForCausalLM.save_pretrained`, so the files are exactly what a real checkpoint looks like) and a
byte-level BPE tokenizer with a Qwen-style chat template, loadable with `AutoTokenizer.from_pretrained(dir)`.
"""

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

if TYPE_CHECKING:
    from model.qwen3_next import HybridLM, ModelArgs

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# Qwen3's template, cut down: ChatML turns; `enable_thinking=False` pre-fills an empty think block.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}{%- endif %}"
)

TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 16,
    "linear_value_head_dim": 16,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "max_position_embeddings": 1 << 20,
    # Large enough that random logits are not all near zero, so parity checks and argmax mean something.
    "initializer_range": 0.1,
}


def local_training_text() -> str:
    """Text that ships with this machine: the license texts, else the standard library's docstrings."""
    licenses = sorted(Path("/usr/share/common-licenses").glob("*"))
    texts = [p.read_text(errors="ignore") for p in licenses if p.is_file()]
    if not texts:
        stdlib = Path(sys.modules["os"].__file__).parent
        texts = [p.read_text(errors="ignore") for p in sorted(stdlib.glob("*.py"))[:60]]
    return "\n".join(texts)


@functools.cache
def trained_tokenizer_json(vocab_size: int) -> str:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(local_training_text().splitlines(), trainer=trainer)
    return tokenizer.to_str()


def save_test_tokenizer(directory: str | Path, vocab_size: int = 1024) -> Any:
    """Trains (once per process) and saves a byte-level BPE tokenizer; returns the transformers tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(trained_tokenizer_json(vocab_size)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:2] + SPECIAL_TOKENS[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(directory))
    return tokenizer


# TINY_CONFIG's expert fields, which a dense Qwen3.5 config does not take.
MOE_FIELDS = (
    "num_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
)


def causal_lm_class(model_type: str) -> tuple[type, type]:
    """transformers' (config class, causal LM class) for a text model type this project reads."""
    import transformers

    names = {
        "qwen3_next": ("Qwen3NextConfig", "Qwen3NextForCausalLM"),
        "qwen3_5_text": ("Qwen3_5TextConfig", "Qwen3_5ForCausalLM"),
        "qwen3_5_moe_text": ("Qwen3_5MoeTextConfig", "Qwen3_5MoeForCausalLM"),
    }[model_type]
    return getattr(transformers, names[0]), getattr(transformers, names[1])


def make_random_checkpoint(
    directory: str | Path,
    seed: int = 0,
    max_shard_size: str | None = None,
    model_type: str = "qwen3_next",
    **config_overrides: Any,
) -> Path:
    """Writes a tiny random checkpoint plus tokenizer to `directory` and returns its path.

    `model_type`: qwen3_next, qwen3_5_text (dense) or qwen3_5_moe_text. `config_overrides` are fields of its
    transformers config (e.g. num_hidden_layers=8, layer_types=[...], rope_parameters={...}); the vocabulary
    always matches the tokenizer. `max_shard_size` (e.g. "50KB") writes sharded safetensors with an index.
    """
    from transformers import GenerationConfig

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = save_test_tokenizer(directory)
    im_end, pad = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    config_class, model_class = causal_lm_class(model_type)
    tiny = {k: v for k, v in TINY_CONFIG.items() if model_type != "qwen3_5_text" or k not in MOE_FIELDS}
    config = config_class(
        **{
            **tiny,
            "vocab_size": len(tokenizer),
            "eos_token_id": im_end,
            "pad_token_id": pad,
            **config_overrides,
        }
    )
    torch.manual_seed(seed)
    model = model_class(config)
    with torch.no_grad():  # init leaves norm weights and dt_bias constant: make every parameter count
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter), alpha=0.3)
    model.generation_config = GenerationConfig(eos_token_id=im_end, pad_token_id=pad)
    model.save_pretrained(str(directory), **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    return directory


def random_model(
    args: "ModelArgs", device: str | torch.device, dtype: torch.dtype, seed: int = 0
) -> "HybridLM":
    """A HybridLM with random weights made directly on `device` in `dtype` (no checkpoint, no float32 copy):
    for benchmarks of sizes that would take minutes to write and read back. Matrices ~ N(0, 0.02²); norms,
    dt_bias and A_log as a fresh checkpoint has them."""
    from model.qwen3_next import HybridLM

    device = torch.device(device)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            lm = HybridLM(args)
    finally:
        torch.set_default_dtype(default)
    lm = lm.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in lm.named_parameters():
            if parameter.ndim > 1:
                parameter.normal_(0, 0.02, generator=generator)
            else:  # zero-centred RMSNorm weights and A_log at 0; the DeltaNet's output norm and dt_bias at 1
                parameter.fill_(1.0 if name.endswith(("linear_attn.norm.weight", "dt_bias")) else 0.0)
    lm.place([device] * args.num_hidden_layers)
    return lm.eval().requires_grad_(False)


def add_mtp_head(directory: str | Path, seed: int = 0) -> None:
    """Adds a random multi-token-prediction head (`mtp.*`, named as published checkpoints name it, experts one
    by one) to the checkpoint in `directory`, as a shard of its own; transformers ignores it."""
    import json

    from safetensors.torch import save_file

    from model.qwen3_next import ModelArgs
    from model.speculative import MultiTokenPredictor

    directory = Path(directory)
    torch.manual_seed(seed)
    head = MultiTokenPredictor(ModelArgs.from_dir(directory))
    tensors: dict[str, torch.Tensor] = {}
    for name, parameter in head.state_dict().items():
        # Norm weights are zero-centred: small offsets from 0 (or 1 for plain norms) keep every one in play.
        value = torch.randn_like(parameter) * (0.3 if parameter.ndim == 1 else 0.1)
        if name.endswith("mlp.gate_up_proj"):
            gate, up = value.chunk(2, dim=1)
            for expert in range(value.shape[0]):
                prefix = f"mtp.{name.removesuffix('gate_up_proj')}experts.{expert}"
                tensors[f"{prefix}.gate_proj.weight"], tensors[f"{prefix}.up_proj.weight"] = (
                    gate[expert],
                    up[expert],
                )
        elif name.endswith("mlp.down_proj") and value.ndim == 3:
            for expert in range(value.shape[0]):
                tensors[f"mtp.{name.removesuffix('down_proj')}experts.{expert}.down_proj.weight"] = value[
                    expert
                ]
        else:
            tensors[f"mtp.{name}"] = value
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "mtp.safetensors"))
    index_path = directory / "model.safetensors.index.json"
    if index_path.exists():
        index = json.loads(index_path.read_text())
    else:  # a single-file checkpoint becomes a sharded one
        from safetensors import safe_open

        with safe_open(str(directory / "model.safetensors"), framework="pt") as f:
            index = {"metadata": {}, "weight_map": dict.fromkeys(f.keys(), "model.safetensors")}
    index["weight_map"].update(dict.fromkeys(tensors, "mtp.safetensors"))
    index_path.write_text(json.dumps(index, indent=2))
