import torch
net = torch.hub.load("pytorch/vision", "resnet18", weights=None)
