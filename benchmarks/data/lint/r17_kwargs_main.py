from transformers import AutoModel
kw = {"revision": "main"}
model = AutoModel.from_pretrained("org/model", **kw)
