"""nascompile's version, in a module of its own so that every part can import it without a cycle."""

__version__ = "0.1.0"
