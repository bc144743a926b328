"""kddad: unsupervised network-intrusion detection with autoencoders on KDD Cup 1999.

Submodules load lazily, so the data stages never pay for torch or Lightning.
"""
__version__ = "0.1.0"
