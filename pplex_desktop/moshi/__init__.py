"""The Moshi / PersonaPlex wire protocol, Opus codec, audio helpers and an async client."""
