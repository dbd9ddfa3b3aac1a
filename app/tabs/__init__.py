"""One module per tab of the page: each builds its components, wires its own events and hands
its components back by name (a dataclass), for app/page.py to assemble."""
