"""Docker Engine API server (`nanovisor serve`): HTTP <-> Engine translation, streams, hijack, stdcopy.

Nothing here is imported on the CLI path except `nanovisor.api.server.serve`, which imports the rest lazily.
"""
