# Copyright 2026 Roboflare developers
# Licensed under the Apache License, Version 2.0
"""ROS 2 bridge for the Roboflare robot-fleet control plane."""
