import functools

from transformers import AutoModel

load = functools.partial(AutoModel.from_pretrained, trust_remote_code=True)
model = load("org/model", revision="4f2c1e9b7a6d5c3b2a1f0e9d8c7b6a5f4e3d2c1b")
