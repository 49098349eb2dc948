"""A tiny Llama-shaped chat model built offline, saved and reloaded through from_pretrained(path).

The tokenizer is a byte-level BPE trained with `tokenizers` on the shared corpora, wrapped in
PreTrainedTokenizerFast with a ChatML template whose assistant turns carry generation markers
(so TRL can put the loss on assistant tokens only). Weights are random: initializer_range=0.2
lets LoRA alone move the outputs (see STACK_NOTES).
"""

from __future__ import annotations

from pathlib import Path

from tests.paths import RETRIEVAL_CORPORA

BUNDLED_SPEECH = Path(__file__).resolve().parents[1] / "assistant" / "example_data" / "state_of_the_union_2024.md"


def tokenizer_corpus() -> str:
    """The shared corpus where it is beside the repository; on a machine with only the checkout
    (a GPU box), the speech the app ships as example data."""
    shared = RETRIEVAL_CORPORA / "state_of_the_union.md"
    return (shared if shared.exists() else BUNDLED_SPEECH).read_text()[:40_000]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer(extra_text: str = "", vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [tokenizer_corpus(), extra_text]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>",
                                      pad_token="<|endoftext|>", bos_token=None, unk_token=None)
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_model(path: Path, extra_text: str = "", seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Save a tiny random chat model to ``path`` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(extra_text)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, initializer_range=0.2, tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
