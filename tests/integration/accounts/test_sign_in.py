"""Signing in with an existing Matrix account, through the login page (real Synapse)."""

import pytest
from django.contrib.auth import get_user_model

from accounts.matrix import client_api
from accounts.models import MatrixAccount

pytestmark = pytest.mark.django_db
User = get_user_model()


def sign_in(client, username: str, password: str):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_first_sign_in_creates_and_links_a_person(client, synapse, matrix_user_factory):
    peer = matrix_user_factory()
    response = sign_in(client, peer.localpart, peer.password)
    assert response.status_code == 302 and response["Location"] == "/"
    account = MatrixAccount.objects.get(mxid=peer.user_id)
    assert not account.provisioned
    assert account.user.username == peer.localpart
    assert (
        client_api.whoami(synapse.url, access_token=account.access_token)["user_id"] == peer.user_id
    )
    assert client.get("/").status_code == 200


def test_full_matrix_id_and_second_sign_in_reuse_the_device(client, synapse, matrix_user_factory):
    peer = matrix_user_factory()
    sign_in(client, peer.user_id, peer.password)
    first = MatrixAccount.objects.get(mxid=peer.user_id)
    client.post("/accounts/logout/")
    sign_in(client, peer.localpart, peer.password)
    second = MatrixAccount.objects.get(mxid=peer.user_id)
    assert second.device_id == first.device_id
    assert User.objects.filter(matrix_account__mxid=peer.user_id).count() == 1
    assert (
        client_api.whoami(synapse.url, access_token=second.access_token)["device_id"]
        == first.device_id
    )


def test_wrong_password_is_a_clear_message(client, synapse, matrix_user_factory):
    peer = matrix_user_factory()
    response = sign_in(client, peer.localpart, "wrong password")
    assert response.status_code == 400
    assert "do not match" in response.content.decode()
    assert not MatrixAccount.objects.filter(mxid=peer.user_id).exists()


def test_unknown_user_is_a_clear_message(client, synapse):
    response = sign_in(client, "nobody-here-at-all", "whatever password")
    assert response.status_code == 400
    assert "do not match" in response.content.decode()
    assert not User.objects.filter(username="nobody-here-at-all").exists()


def test_unreachable_homeserver_is_a_clear_message(client, settings):
    settings.MATRIX_HOMESERVER_URL = "http://127.0.0.1:9"
    response = sign_in(client, "alice", "secret password")
    assert response.status_code == 400
    assert "cannot be reached" in response.content.decode()
    assert not User.objects.exists()


def test_local_person_with_same_name_is_not_taken_over(client, synapse, matrix_user_factory):
    peer = matrix_user_factory()
    User.objects.create_user(username=peer.localpart, password="local only")
    sign_in(client, peer.localpart, peer.password)
    account = MatrixAccount.objects.get(mxid=peer.user_id)
    assert account.user.username == f"{peer.localpart}-2"


def test_home_page_requires_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_a_returning_sign_in_writes_in_two_transactions(client, matrix_user_factory):
    """The device's new token, then everything else signing in writes (the session with its
    account, the sign-in records) in one transaction: one wait for the database's write lock
    instead of six, and the session is not written again after the view."""
    from django.contrib.sessions.models import Session
    from django.db import connection

    peer = matrix_user_factory()
    sign_in(client, peer.localpart, peer.password)
    client.post("/accounts/logout/")
    transactions: list[object] = []  # the transaction of each write, in order

    def record(execute, sql, params, many, context):
        if sql.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            outer = connection.atomic_blocks[0] if connection.in_atomic_block else object()
            if not transactions or transactions[-1] is not outer:
                transactions.append(outer)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = sign_in(client, peer.localpart, peer.password)
    assert response.status_code == 302
    assert len(transactions) == 2, transactions
    session = Session.objects.get(session_key=client.session.session_key)
    account = MatrixAccount.objects.get(mxid=peer.user_id)
    assert session.get_decoded()["matrix_account_id"] == account.pk
    assert client.get("/").status_code == 200  # the session works as ever
