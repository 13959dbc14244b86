"""Static package inspection: install-time, import-time and start-up code."""
