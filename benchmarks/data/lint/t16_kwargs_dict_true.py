import torch
LOAD_KW = dict(weights_only=True, map_location="cpu")


def restore(path):
    return torch.load(path, **LOAD_KW)
