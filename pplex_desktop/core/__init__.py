"""Settings, paths, errors and stores: stdlib only, no Qt and no aiohttp."""
