from sentence_transformers import SentenceTransformer
enc = SentenceTransformer("org/model")
