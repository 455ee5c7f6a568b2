"""The start of a script run in a subprocess that records which Numba functions it compiles.

Prepend :data:`LISTEN` to the script's code; afterwards ``names`` holds the Python names of the
functions whose compilation started (one entry per compilation; Numba's own ``impl`` helpers included).
"""

LISTEN = """
from numba.core import event
names = []
class L(event.Listener):
    def on_start(self, ev): names.append(ev.data["dispatcher"].py_func.__name__)
    def on_end(self, ev): pass
event.register("numba:compile", L())
"""
