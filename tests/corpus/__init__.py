"""Generated test corpora (malicious samples only ever touch a marker file)."""
