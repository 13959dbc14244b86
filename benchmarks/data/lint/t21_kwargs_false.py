import torch
opts = {"weights_only": False, "map_location": "cpu"}
state = torch.load("model.pt", **opts)
