from transformers import AutoModel


def load(args):
    a = AutoModel.from_pretrained("./m", trust_remote_code=False)
    return AutoModel.from_pretrained("./m", trust_remote_code=args.trust_remote_code)
