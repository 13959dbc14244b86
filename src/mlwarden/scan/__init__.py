"""Static scanning of model files and repositories. Nothing scanned is ever executed."""
