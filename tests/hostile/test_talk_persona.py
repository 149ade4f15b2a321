"""The talk page refuses a persona too long for the URL itself, in a sentence, before it asks.

Its box takes 2,000 characters; 1,000 CJK characters are 9,000 bytes in the URL, which the
gateway's own 8,190-byte request target cannot even carry (aiohttp then answers plain text).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.hostile.faults_support import CJK_PERSONA
from tests.web.conftest import (  # noqa: F401 (fixtures)
    WebGatewayFactory,
    browser,
    browser_home,
    chromium,
    fake_mic,
    make_web_gateway,
    page_factory,
    web_tls,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_persona_too_long_once_encoded_is_explained_on_the_page(
    make_web_gateway: WebGatewayFactory,  # noqa: F811
    page_factory: Any,  # noqa: F811
) -> None:
    gateway = await make_web_gateway()
    key = gateway.new_key("Phone")
    page = await page_factory()
    await page.goto(gateway.https_url + "/")
    await page.wait_for_function("() => document.body.dataset.ready === '1'")
    await page.get_by_label("Key from the desktop app").fill(key)
    await page.get_by_role("button", name="Use key").click()
    await expect(page.locator("#key-name")).to_have_text("Phone")
    await page.locator("#persona-text").fill(CJK_PERSONA)
    await page.get_by_role("button", name="Talk").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "The persona is too long: it takes 9000 bytes once encoded for the web address, and the "
        "limit is 6144 (about 682 Chinese, Japanese or Korean characters, or 2,000 in English). "
        "Shorten it and press Talk again."
    )
    assert gateway.ctx.sessions.sessions == {}
    # 682 characters fit: the page sends them, and the model server gets them whole.
    await page.locator("#persona-text").fill(CJK_PERSONA[:682])
    await page.get_by_role("button", name="Talk").click()
    await page.wait_for_function("() => document.body.dataset.state === 'live'")
    assert gateway.sims[0].stats.queries[-1]["text_prompt"] == CJK_PERSONA[:682]
    await page.get_by_role("button", name="Stop").click()
    await page.wait_for_function("() => document.body.dataset.state === 'idle'")
