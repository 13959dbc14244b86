import torch
a = torch.load("a.pt")  # mlwarden: ignore[lint-torch-load-implicit] produced by our own trainer
b = torch.load("b.pt")  # mlwarden: ignore[lint-torch-load-implicit]
