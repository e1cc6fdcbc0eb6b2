"""Tiny real models built from configs (random weights, no hub), one per architecture family.

`build(arch)` returns a transformers model small enough for a test; `ARCHS` lists them.
`tokenizer()` is a real fast tokenizer trained here on a few sentences, with a chat template.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

# arch -> (config class name, model class name, config kwargs)
_SPECS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(hidden_size=64, intermediate_size=128,
                                                       num_hidden_layers=2, num_attention_heads=4,
                                                       num_key_value_heads=2, vocab_size=256)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(hidden_size=64, intermediate_size=128,
                                                           num_hidden_layers=2, num_attention_heads=4,
                                                           num_key_value_heads=2, vocab_size=256)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                     num_attention_heads=4, num_key_value_heads=2, vocab_size=256)),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=128)),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                            num_attention_heads=4, vocab_size=256)),
    "falcon": ("FalconConfig", "FalconForCausalLM", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                        vocab_size=256, new_decoder_architecture=False)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                  num_attention_heads=4, num_key_value_heads=4, vocab_size=256,
                                                  pad_token_id=0)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                           num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                                                           num_local_experts=4, num_experts_per_tok=2)),
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4,
                                                         vocab_size=256, decoder_start_token_id=0)),
    "bart": ("BartConfig", "BartForConditionalGeneration", dict(d_model=64, encoder_layers=2, decoder_layers=2,
                                                               encoder_attention_heads=4, decoder_attention_heads=4,
                                                               encoder_ffn_dim=128, decoder_ffn_dim=128,
                                                               vocab_size=256, max_position_embeddings=128)),
    "bert": ("BertConfig", "BertForSequenceClassification", dict(hidden_size=64, intermediate_size=128,
                                                                num_hidden_layers=2, num_attention_heads=4,
                                                                vocab_size=256, num_labels=3)),
    "vit": ("ViTConfig", "ViTForImageClassification", dict(hidden_size=64, intermediate_size=128,
                                                          num_hidden_layers=2, num_attention_heads=4,
                                                          image_size=32, patch_size=8,
                                                          num_labels=3)),
}
ARCHS = list(_SPECS)
CAUSAL = ["llama", "mistral", "qwen2", "gpt2", "gpt_neox", "falcon", "phi3", "mixtral"]


def build(arch: str = "llama", seed: int = 0, device: str | None = None, **overrides: Any) -> Any:
    """A tiny randomly initialised model of family `arch` (on `device`, e.g. "meta")."""
    import transformers

    config_name, model_name, kwargs = _SPECS[arch]
    config = getattr(transformers, config_name)(**{**kwargs, **overrides})
    torch.manual_seed(seed)
    cls = getattr(transformers, model_name)
    if device is not None:
        with torch.device(device):
            return cls(config)
    return cls(config).eval()


def config(arch: str = "llama", **overrides: Any) -> Any:
    import transformers

    config_name, _, kwargs = _SPECS[arch]
    return getattr(transformers, config_name)(**{**kwargs, **overrides})


def save(arch: str, folder: Any, seed: int = 0) -> Any:
    """Save a tiny model (and tokenizer) to `folder` for from_pretrained; returns the folder."""
    model = build(arch, seed=seed)
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return folder


_CORPUS = [
    "the cat sat on the mat and looked at the door",
    "a small model learns to answer in a short and clear way",
    "user: what is two plus two? assistant: two plus two is four",
    "the quick brown fox jumps over the lazy dog",
    "fine tuning adapts a few parameters of a large model",
] * 4

CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|assistant|>{% generation %}"
    "{{ m['content'] }}<|end|>{% endgeneration %}{% else %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@functools.cache
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    special = ["<pad>", "<unk>", "<s>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok.train_from_iterator(_CORPUS, trainers.BpeTrainer(vocab_size=256, special_tokens=special,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    return tok.to_str()


def tokenizer() -> Any:
    """A real fast tokenizer (vocab <= 256) with pad/eos tokens and a chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="<|end|>",
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok
