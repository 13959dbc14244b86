from transformers import pipeline
clf = pipeline("text-classification", model="org/model")
