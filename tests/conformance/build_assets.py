"""Build tiny random model assets for the real Kyutai ``moshi.server``.

This script runs with the conformance venv's Python (it imports torch and moshi, which our own
venv does not have): ``python build_assets.py OUT_DIR``. It writes

- ``tokenizer.model``: a sentencepiece model trained here on generated text, vocabulary =
  ``text_card``, because the server maps every sampled text id through it;
- ``mimi.json`` + ``mimi.safetensors``: a reduced Mimi (same 24 kHz, 12.5 Hz frames and
  2048-entry codebooks, far smaller networks) with random codebooks, since fresh ones are all
  zero and would decode every code to the same vector;
- ``config.json`` + ``moshi.safetensors``: a small LM with the real stream layout (8 audio
  codebooks per side, 17 delays) that names the reduced Mimi through ``mimi_config_name``.

Everything is seeded, so two builds give the same files.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import sentencepiece
import torch
from moshi.models import loaders
from moshi.models.lm import LMModel
from safetensors.torch import save_file

SEED = 1234
TEXT_CARD = 512
CARD = 2048
DEP_Q = 8
N_Q = 2 * DEP_Q

MIMI_DIM = 64
MIMI_CONFIG = {
    "sample_rate": 24000,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": {
        "channels": 1,
        "dimension": MIMI_DIM,
        "causal": True,
        "n_filters": 8,
        "n_residual_layers": 1,
        "activation": "ELU",
        "compress": 2,
        "dilation_base": 2,
        "disable_norm_outer_blocks": 0,
        "kernel_size": 7,
        "residual_kernel_size": 3,
        "last_kernel_size": 3,
        "norm": "none",
        "pad_mode": "constant",
        # The real hop (8 * 6 * 5 * 4 = 960 samples, 25 Hz, halved to 12.5 Hz by the resampler).
        "ratios": [8, 6, 5, 4],
        "true_skip": True,
    },
    "quantizer": {
        "dimension": 32,
        "n_q": DEP_Q,
        "bins": CARD,
        "input_dimension": MIMI_DIM,
        "output_dimension": MIMI_DIM,
    },
    "transformer": {
        "d_model": MIMI_DIM,
        "num_heads": 4,
        "num_layers": 1,
        "causal": True,
        "layer_scale": 0.01,
        "context": 250,
        "conv_layout": True,
        "max_period": 10000,
        "gating": "none",
        "norm": "layer_norm",
        "positional_embedding": "rope",
        "dim_feedforward": 128,
        "input_dimension": MIMI_DIM,
        "output_dimensions": [MIMI_DIM],
    },
}

LM_CONFIG = {
    "dim": 64,
    "text_card": TEXT_CARD,
    "existing_text_padding_id": 3,
    "n_q": N_Q,
    "dep_q": DEP_Q,
    "card": CARD,
    "num_heads": 4,
    "num_layers": 2,
    "hidden_scale": 4.125,
    "causal": True,
    "layer_scale": None,
    "context": 750,
    "max_period": 10000,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 64,
    "depformer_dim_feedforward": 256,
    "depformer_num_heads": 4,
    "depformer_num_layers": 1,
    "depformer_layer_scale": None,
    "depformer_multi_linear": True,
    "depformer_context": 8,
    "depformer_max_period": 10000,
    "depformer_gating": "silu",
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    # Text, then 8 codebooks of the model's own audio, then 8 of the user's: as the real model.
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}

SYLLABLES = [c + v for c in "bdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def _corpus(rng: random.Random, lines: int = 4000) -> list[str]:
    words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 3))) for _ in range(1500)]
    words += ["hello", "yes", "no", "okay", "the", "moshi", "café", "naïve"]
    return [
        " ".join(rng.choices(words, k=rng.randint(4, 14))).capitalize() + rng.choice(".?!,")
        for _ in range(lines)
    ]


def build_tokenizer(out: Path, rng: random.Random) -> None:
    corpus = out / "corpus.txt"
    corpus.write_text("\n".join(_corpus(rng)) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(out / "tokenizer"),
        vocab_size=TEXT_CARD,
        model_type="unigram",
        character_coverage=1.0,
        # Ids 0 and 3 are the ones the server never sends as text (end padding and padding).
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=2,
        minloglevel=2,
    )
    corpus.unlink()
    (out / "tokenizer.vocab").unlink()
    size = sentencepiece.SentencePieceProcessor(str(out / "tokenizer.model")).get_piece_size()
    if size != TEXT_CARD:
        raise SystemExit(f"The tokenizer has {size} pieces instead of {TEXT_CARD}.")


def _with_live_codebooks(name: str, tensor: torch.Tensor) -> torch.Tensor:
    # A codebook's centroids are embedding_sum / cluster_usage, and _initialized says that
    # k-means already ran: random sums, unit usage, initialised.
    if name.endswith("embedding_sum"):
        return torch.randn_like(tensor)
    if name.endswith(("cluster_usage", "_initialized")):
        return torch.ones_like(tensor)
    return tensor.contiguous()


def build_mimi(out: Path) -> None:
    (out / "mimi.json").write_text(json.dumps(MIMI_CONFIG, indent=1), encoding="utf-8")
    mimi = loaders.get_mimi(None, MIMI_CONFIG, device="cpu", num_codebooks=DEP_Q)
    state = {name: _with_live_codebooks(name, t) for name, t in mimi.state_dict().items()}
    save_file(state, str(out / "mimi.safetensors"))


def build_lm(out: Path) -> None:
    config = dict(LM_CONFIG)
    config["mimi_config_name"] = "file://" + str((out / "mimi.json").resolve())
    config["model_type"] = "moshi"
    (out / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    lm = LMModel(device="cpu", dtype=torch.float32, **LM_CONFIG)
    state = {k: v.to(torch.bfloat16).contiguous() for k, v in lm.state_dict().items()}
    save_file(state, str(out / "moshi.safetensors"))


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    build_tokenizer(out, rng)
    build_mimi(out)
    build_lm(out)
    print(f"Built tiny random Moshi assets in {out}.")


if __name__ == "__main__":
    main()
