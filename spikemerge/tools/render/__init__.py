"""render_group: the figures a curator looks at, per group.

``groups`` plans and caches (content-hashed PNGs, worker processes), ``draw`` dispatches to the figures,
``figures`` holds the four reusable default figures, ``style`` the settings, colours and PNG encoding.
"""

from __future__ import annotations

from .groups import ALL_FEATURES, DEFAULT_FEATURES, DEFAULT_SETTINGS, check_features, is_complete_png, render_group, render_groups
from .style import RenderSettings

__all__ = [
    "ALL_FEATURES", "DEFAULT_FEATURES", "DEFAULT_SETTINGS", "RenderSettings", "check_features", "is_complete_png",
    "render_group", "render_groups",
]
