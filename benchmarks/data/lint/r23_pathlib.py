from pathlib import Path

from transformers import AutoModel

model = AutoModel.from_pretrained(Path(__file__).parent / "model")
