"""The labs' engine: headless functions behind the app's lab screens and `bntui lab`.

One module per lab; each takes a `RunConfig` (or a `Session`) and returns plain data
(dataclasses of numbers and arrays) that the command line prints and the app draws.
Like the rest of the engine, nothing here imports a UI library.
"""
