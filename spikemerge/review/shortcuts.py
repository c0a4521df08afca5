"""Keyboard shortcuts for spikeinterface-gui's web mode that need no network.

spikeinterface-gui 0.14 installs its shortcuts (ctrl+f focus, ctrl+u unmerge...) with a Panel
``ReactComponent``. Panel loads React for such components from the esm.sh CDN *in the browser*,
and when the browser cannot reach it (an air-gapped lab network, this project's test machine)
the whole page stays blank: one failed component stops Bokeh from rendering the document.
This component offers the same interface (a ``shortcuts`` list of dicts, ``on_msg`` handlers
receiving the shortcut's name) as plain JavaScript, so the page loads nothing from outside.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent


class OfflineShortcuts(JSComponent):
    """Global key bindings: each ``{"name", "key", "ctrlKey"?, "altKey"?, "metaKey"?, "shiftKey"?}``
    sends its ``name`` to the Python side when pressed (ctrl also answers to the Mac's cmd key)."""

    shortcuts = param.List(item_type=dict)

    _esm = """
    function keyOf(e) {
      return [e.key, !!e.altKey, !!e.ctrlKey, !!e.metaKey, !!e.shiftKey].join("|");
    }

    export function render({ model }) {
      const byKey = new Map();
      for (const s of model.shortcuts) {
        byKey.set(keyOf(s), s.name);
        if (s.ctrlKey) {
          byKey.set(keyOf({ ...s, ctrlKey: false, metaKey: true }), s.name);
        }
      }
      const onKeyDown = (e) => {
        const name = byKey.get(keyOf(e));
        if (name !== undefined) {
          e.preventDefault();
          e.stopPropagation();
          model.send_msg(name);
        }
      };
      window.addEventListener("keydown", onKeyDown);
      model.on("remove", () => window.removeEventListener("keydown", onKeyDown));
      return document.createElement("span");
    }
    """


def install() -> None:
    """Make spikeinterface-gui's web views use :class:`OfflineShortcuts` (in this process only).

    The views import ``KeyboardShortcuts`` from ``spikeinterface_gui.utils_panel`` when they build
    their layout, so replacing the module attribute before the window is built is enough.
    """
    from spikeinterface_gui import utils_panel

    utils_panel.KeyboardShortcuts = OfflineShortcuts
