import pickle

import cloudpickle
import dill
import joblib
import pandas as pd

a = pickle.load(open("a.pkl", "rb"))
b = dill.loads(b"")
c = cloudpickle.load(open("c.pkl", "rb"))
d = joblib.load("model.joblib")
e = pd.read_pickle("frame.pkl")
