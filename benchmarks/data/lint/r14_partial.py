from functools import partial

from transformers import AutoModel

load = partial(AutoModel.from_pretrained, revision="main")
model = load("org/model")
