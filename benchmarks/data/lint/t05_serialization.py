import torch
state = torch.serialization.load("model.pt")
