"""NSNet toolkit library: datasets, decoding, models, feature cache and the maths of the method."""

__version__ = "0.1.0"

# Bumped whenever the layout or meaning of anything written to a cache changes; it is part of
# every cache fingerprint, so an old cache is never mixed with a new one.
CACHE_SCHEMA_VERSION = 2  # 2: eval frames resized as uint8 (pipeline.extract.to_model_input)
