from transformers import AutoModel
LOCAL_DIR = "./checkpoints/bert"
model = AutoModel.from_pretrained(LOCAL_DIR)
