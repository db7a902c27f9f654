"""Uploading images and files, showing them, and the media proxy's safety rules, in Chromium."""

import io

import pytest
from PIL import Image

from tests.e2e.conftest import open_shared_room, sign_in

pytestmark = pytest.mark.e2e


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (47, 111, 237)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_images_and_files_go_out_and_come_back_safely(
    page, workspace, matrix_user_factory, bob, artifacts
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Files")

    page.set_input_files(
        "#upload-file",
        files=[{"name": "chart.png", "mimeType": "image/png", "buffer": png_bytes()}],
    )
    page.click("form.upload button")
    image = bob.wait_for_event(room_id, lambda e: e.get("content", {}).get("msgtype") == "m.image")
    assert image["content"]["url"].startswith("mxc://")
    assert image["content"]["info"]["mimetype"] == "image/png"
    shown = page.locator("ol.timeline img.inline-image[alt='chart.png']")
    shown.wait_for()
    page.wait_for_function(
        "() => document.querySelector(\"img.inline-image[alt='chart.png']\").naturalWidth > 0"
    )

    page.set_input_files(
        "#upload-file",
        files=[
            {
                "name": "notes.html",
                "mimeType": "text/html",
                "buffer": b"<script>alert(1)</script>meeting notes",
            }
        ],
    )
    page.click("form.upload button")
    document = bob.wait_for_event(
        room_id, lambda e: e.get("content", {}).get("msgtype") == "m.file"
    )
    assert document["content"]["body"] == "notes.html"
    link = page.locator("ol.timeline a.file:has-text('notes.html')")
    link.wait_for()
    response = page.request.get(workspace.url + link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.body() == b"<script>alert(1)</script>meeting notes"
    page.screenshot(path=str(artifacts / "media.png"))
    assert page.errors == []


def test_oversized_upload_is_refused_with_the_homeservers_limit(
    page, workspace, matrix_user_factory, bob
):
    alice = matrix_user_factory()
    open_shared_room(page, workspace, alice, bob, "Files")
    page.set_input_files(
        "#upload-file",
        files=[
            {
                "name": "huge.bin",
                "mimeType": "application/octet-stream",
                "buffer": b"\0" * (6 * 1024 * 1024),
            }
        ],
    )
    page.click("form.upload button")
    page.wait_for_selector(".event.error:has-text('accepts files up to 5.0 MB')")


def test_media_proxy_refuses_malformed_references(page, workspace, matrix_user_factory, bob):
    alice = matrix_user_factory()
    sign_in(page, workspace, alice)
    for path in (
        "/media/file/evil.example%2F..%2F/abc",
        "/media/file/hs/abc%24def",
        "/media/avatar/bad%20server/abc",
    ):
        assert page.request.get(workspace.url + path).status == 404
