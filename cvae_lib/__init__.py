"""cvae_lib: the tested library behind the course notebooks.

Layers import downward only (see docs/library.md; import-linter checks the order in
pyproject.toml): course, grade -> compute -> recipes -> widgets -> plotting -> checks ->
metrics, train -> checkpoint -> latent -> diffusion, flow -> models -> data -> profiles ->
runtime -> settings, pixels; files and configs are leaf helpers.
Importing the package has no side effects: no downloads, no device probing, no matplotlib.
"""
__version__ = "0.1.0"
