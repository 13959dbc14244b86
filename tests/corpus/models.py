"""Tiny real models for client and loader tests (random weights, generated locally)."""

from __future__ import annotations

import socket
from pathlib import Path

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "model", "store",
         "safe", "##s", "the", "a", "registry", "airlock", "verify"]


def make_tiny_model(path: Path, title: str = "tiny test model") -> Path:
    """A BertModel (hidden size 32), safetensors weights and a WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = path.parent / f"{path.name}-vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=37,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(path, safe_serialization=True)
    (path / "README.md").write_text(f"# {title}\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
