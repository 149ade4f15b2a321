"""The aiohttp gateway: auth, limits, admin, proxy, scheduler, inference. Never imports Qt."""
