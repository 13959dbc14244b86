import torch
fn = getattr(torch, "load")
state = fn("model.pt")
