"""Talking to Docker: the daemon session and labelled containers (engine.py, the only module that imports
docker), image IDs and CPU emulation. May import the core only."""
