import torch
scripted = torch.jit.load("model.ts")
