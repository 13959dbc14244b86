import numpy as np
ALLOW = True
a = np.load("a.npy", allow_pickle=True)
b = np.load("b.npy", allow_pickle=ALLOW)
c = np.load("c.npy")
