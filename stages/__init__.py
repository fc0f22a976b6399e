"""The pipeline's stages: thin modules that wire the library to storage and the CLI."""
