from transformers import AutoModel


def load(name):
    return AutoModel.from_pretrained(name)
