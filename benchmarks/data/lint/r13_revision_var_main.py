from transformers import AutoModel
REVISION = "main"
model = AutoModel.from_pretrained("org/model", revision=REVISION)
