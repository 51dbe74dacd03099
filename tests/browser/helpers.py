"""What the browser tests do again and again: type and send a prompt, wait for replies to end,
measure the page, watch the frames a page sends."""

from playwright.sync_api import expect

from arena.models import ChatModel

MOBILE = {"width": 390, "height": 844}  # a phone's viewport


def send(page, text: str) -> None:
    page.get_by_test_id("prompt").fill(text)
    page.get_by_test_id("send").click()


def wait_both_ended(page, status: str = "done", timeout: int = 20_000) -> None:
    for side in ("a", "b"):
        expect(page.get_by_test_id(f"reply-{side}").locator(f".msg.bot.{status}")).to_have_count(1, timeout=timeout)


def page_width(page) -> dict:
    return page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, view: document.documentElement.clientWidth})")


def sent_frames(page, action: str) -> list:
    """The frames with this action the page sends from now on, as they are sent."""
    frames = []
    keep = lambda p: frames.append(p) if f'"action":"{action}"' in p else None  # noqa: E731
    page.on("websocket", lambda ws: ws.on("framesent", keep))
    return frames


def zephyr_against(zephyr_url: str, name: str, url: str) -> None:
    """The two models of a battle: zephyr, and an odd one (failing, slow to start...) at `url`."""
    ChatModel.objects.create(name="zephyr-7b-beta", endpoint_url=zephyr_url, template="zephyr", timeout_seconds=20)
    ChatModel.objects.create(name=name, endpoint_url=url, template="chatml", timeout_seconds=20)
