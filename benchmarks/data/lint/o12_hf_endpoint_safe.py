import os
os.environ["HF_ENDPOINT"] = "https://mirror.internal"
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:8080")
