from transformers import AutoModel
model_cls = AutoModel
model = model_cls.from_pretrained("org/model")
