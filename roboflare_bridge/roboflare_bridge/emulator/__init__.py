# Copyright 2026 Roboflare developers
# Licensed under the Apache License, Version 2.0
"""A faithful local stand-in for the Roboflare API (HTTP + WebSocket, simulated robots)."""

from .server import Emulator, EmulatorConfig, Faults

__all__ = ['Emulator', 'EmulatorConfig', 'Faults']
