"""The auto-DM policy engine: pure decisions over plain data.

Nothing here opens a socket or a database. Facts about the world (when a recipient
followed, how many people already got this text) arrive through the `Signals` protocol
that the proxy implements on top of its store.
"""
