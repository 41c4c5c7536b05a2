"""cvae_lib: the tested library behind the course notebooks.

Layers import downward only (see docs/library.md; import-linter checks the order in
pyproject.toml): course, grade -> widgets -> plotting -> checks -> metrics, train -> latent
-> diffusion -> models -> data -> profiles -> runtime; files and configs are leaf helpers.
Importing the package has no side effects: no downloads, no device probing, no matplotlib.
"""
__version__ = "0.1.0"
