from dataclasses import dataclass


@dataclass
class ModelArgs:
    name: str = "org/model"
    trust_remote_code: bool = True


settings = {"model": {"trust_remote_code": True}}
