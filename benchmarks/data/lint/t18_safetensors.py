from safetensors import safe_open
from safetensors.torch import load, load_file

tensors = load_file("model.safetensors")
other = load(open("model.safetensors", "rb").read())
with safe_open("model.safetensors", framework="pt") as fh:
    names = list(fh.keys())
