"""The admin console works under the same Content-Security-Policy as the workspace: every admin page
carries the policy and holds no inline script, style or handler that it would refuse."""

import re

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db
REFUSED = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I),
    "style attribute": re.compile(r"<[^>]*\sstyle\s*=", re.I),
    "inline handler": re.compile(r"<[^>]*\son[a-z]+\s*=", re.I),
    "style block": re.compile(r"<style\b", re.I),
}


def test_admin_pages_need_no_unsafe_policy(admin_client):
    person = get_user_model().objects.create_user(username="bob")
    pages = [
        "/admin/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        f"/admin/auth/user/{person.pk}/change/",
        f"/admin/auth/user/{person.pk}/password/",
        "/admin/accounts/matrixaccount/",
        "/admin/axes/accessattempt/",
        "/admin/password_change/",
        "/admin/auth/user/import/",
        "/admin/records/auditentry/",
        "/admin/rooms/room/",
        "/admin/console/autojoinroom/",
        "/admin/console/autojoinroom/add/",
        "/admin/console/pendingjoin/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert "script-src 'self'" in response["Content-Security-Policy"], url
        html = response.content.decode()
        found = {what: pattern.findall(html)[:3] for what, pattern in REFUSED.items()}
        assert {what: hits for what, hits in found.items() if hits} == {}, url
