"""pplex-desktop: a desktop companion and gateway for PersonaPlex / Moshi servers."""

__version__ = "0.1.0"
