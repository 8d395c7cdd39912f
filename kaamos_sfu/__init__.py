"""Kaamos SFU: a self-hosted WebRTC selective forwarding unit for calls of up to 4 people."""

__version__ = "0.1.0"
