"""cvae_lib: the tested library behind the course notebooks.

Layers import downward only (see README "Library map"):
widgets -> plotting -> metrics, train -> diffusion, models -> data -> runtime.
Importing the package has no side effects: no downloads, no device probing, no matplotlib.
"""
__version__ = "0.1.0"
