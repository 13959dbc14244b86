"""Command-line interface. Each command lives in its own module, loaded on demand."""
