"""The `nanovisor` command line: parses, calls the Engine, prints like Docker's CLI."""
