import tempfile

from transformers import AutoModel


def roundtrip(model):
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return AutoModel.from_pretrained(tmp)
