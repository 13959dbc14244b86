import torch.serialization as ser
state = ser.load("model.pt")
