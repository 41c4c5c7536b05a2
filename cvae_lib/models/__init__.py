"""Models as plain `nn.Module`s, one file each, config dataclass and loss beside the model.

Shared layers live in `blocks.py`; models never import each other.
"""
