"""The ``axc`` command line: a thin Typer/Rich layer over ``axcenter.client``.

It holds no logic of its own beyond parsing human input (durations, memory sizes) and
rendering answers, so that everything it can do is also possible from Python.
"""
