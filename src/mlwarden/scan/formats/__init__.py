"""Analysers for non-pickle model formats, shared by several readers (zip, hdf5, protobuf)."""
