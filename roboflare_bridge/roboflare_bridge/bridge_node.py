# Copyright 2026 Roboflare developers
# Licensed under the Apache License, Version 2.0
"""The bridge node (placeholder until the control plane lands)."""


def main() -> None:
    raise SystemExit('not yet')
