"""bntui: learn batch normalization and backpropagation by stepping through them."""

__version__ = "0.1.0"
