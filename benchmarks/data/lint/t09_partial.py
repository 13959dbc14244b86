import functools

import torch

loader = functools.partial(torch.load, map_location="cpu")
state = loader("model.pt")
