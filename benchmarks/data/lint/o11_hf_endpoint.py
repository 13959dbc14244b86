import os
import subprocess

MIRROR = "http://mirror.internal:8080"
os.environ["HF_ENDPOINT"] = MIRROR
os.environ.setdefault("HF_ENDPOINT", "http://mirror.internal")
os.putenv("HF_ENDPOINT", "http://mirror.internal")
subprocess.run("HF_ENDPOINT=http://mirror.internal python train.py", shell=True)
