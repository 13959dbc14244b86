import os

from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(__file__), "tok"))
